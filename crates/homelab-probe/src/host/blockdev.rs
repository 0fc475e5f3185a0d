//! Block device identity: which filesystem UUID, label, type, partition UUID and partition
//! name each block device has, so that `UUID=...` in fstab and `/dev/sdb1` in the mount table
//! can be matched.
//!
//! Read from, in order:
//! 1. sysfs, `/sys/class/block/<name>/dev`: every block device and its `major:minor` (the
//!    number the mount table shows for block-based filesystems);
//! 2. udev's links under the host root, `/dev/disk/by-uuid`, `by-label`, `by-partuuid`,
//!    `by-partlabel` (link names are udev-escaped: `Plex\x20Drive`); this works in a sysroot
//!    and on a live host with udev running;
//! 3. on the live host only, with the cargo feature `udev` (default on): the udev database
//!    through libudev (`ID_FS_UUID`, `ID_FS_TYPE`, `ID_FS_LABEL_ENC`, `ID_PART_ENTRY_UUID`,
//!    `ID_PART_ENTRY_NAME`), which is also where `lsblk` reads them. It adds the filesystem type,
//!    which the links do not carry.
//!
//! Without udev running (a container, an initrd shell) there are no links and no database:
//! devices are still listed from sysfs, with no identity. We do not read superblocks
//! ourselves (that needs root and is blkid's job).

use serde::{Deserialize, Serialize};

use super::Host;
use crate::model::fs::DevNumber;
use crate::model::source::{Source, TagKind, decode_udev_name};

/// sysfs directory listing every block device.
pub const SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// One block device and its identity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Kernel name: `sdb1`, `nvme0n1p2`, `dm-0`.
    pub name: String,
    /// Device node: `/dev/sdb1`.
    pub devnode: String,
    /// Device number, from sysfs or udev.
    pub devnum: Option<DevNumber>,
    /// Filesystem UUID (`ID_FS_UUID`, `/dev/disk/by-uuid`).
    pub uuid: Option<String>,
    /// Filesystem label (`ID_FS_LABEL_ENC` decoded, `/dev/disk/by-label`).
    pub label: Option<String>,
    /// Filesystem type (`ID_FS_TYPE`; udev only).
    pub fstype: Option<String>,
    /// Partition UUID (`ID_PART_ENTRY_UUID`, `/dev/disk/by-partuuid`).
    pub partuuid: Option<String>,
    /// Partition name (`ID_PART_ENTRY_NAME` decoded, `/dev/disk/by-partlabel`).
    pub partlabel: Option<String>,
}

impl BlockDevice {
    /// The value of tag `kind` on this device.
    pub fn tag(&self, kind: TagKind) -> Option<&str> {
        match kind {
            TagKind::Uuid => self.uuid.as_deref(),
            TagKind::Label => self.label.as_deref(),
            TagKind::PartUuid => self.partuuid.as_deref(),
            TagKind::PartLabel => self.partlabel.as_deref(),
        }
    }

    fn tag_mut(&mut self, kind: TagKind) -> &mut Option<String> {
        match kind {
            TagKind::Uuid => &mut self.uuid,
            TagKind::Label => &mut self.label,
            TagKind::PartUuid => &mut self.partuuid,
            TagKind::PartLabel => &mut self.partlabel,
        }
    }

    /// `/dev/sdb1 (UUID=..., LABEL=..., ext4)`: what a person needs to recognise the device.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> =
            TagKind::ALL.into_iter().filter_map(|k| self.tag(k).map(|v| format!("{}={v}", k.name()))).take(2).collect();
        if let Some(t) = &self.fstype {
            parts.push(t.clone());
        }
        if parts.is_empty() { self.devnode.clone() } else { format!("{} ({})", self.devnode, parts.join(", ")) }
    }
}

/// Where identities came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityOrigin {
    /// The udev database, through libudev (plus the links).
    Udev,
    /// The `/dev/disk/by-*` links and sysfs only.
    Links,
}

/// Every block device of a host.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockDevices {
    /// Devices, sorted by name.
    pub devices: Vec<BlockDevice>,
    /// Where the identities came from (`None` for an empty inventory).
    pub origin: Option<IdentityOrigin>,
}

impl BlockDevices {
    /// Reads the block devices of `host`: sysfs and the `/dev/disk/by-*` links, plus the udev
    /// database on the live host (feature `udev`). Unreadable parts are skipped: an absent
    /// `/sys` or `/dev/disk` yields fewer devices, not an error.
    pub fn load(host: &Host) -> Self {
        let mut devs = Self::from_links(host);
        #[cfg(feature = "udev")]
        if host.is_live() && devs.overlay_udev().unwrap_or(false) {
            devs.origin = Some(IdentityOrigin::Udev);
        }
        devs.devices.sort_by(|a, b| a.name.cmp(&b.name));
        devs
    }

    /// Devices from sysfs and identities from the `/dev/disk/by-*` links of `host` only (what
    /// [`BlockDevices::load`] does without udev).
    pub fn from_links(host: &Host) -> Self {
        let mut devs = BlockDevices { devices: Vec::new(), origin: Some(IdentityOrigin::Links) };
        for name in host.read_dir(SYS_CLASS_BLOCK).unwrap_or_default() {
            let Some(name) = name.to_str() else { continue };
            let devnum =
                host.read_to_string(format!("{SYS_CLASS_BLOCK}/{name}/dev")).ok().and_then(|s| parse_devnum(&s));
            devs.entry(name).devnum = devnum;
        }
        for kind in TagKind::ALL {
            let dir = kind.dir().trim_end_matches('/');
            for link in host.read_dir(dir).unwrap_or_default() {
                let Some(link) = link.to_str() else { continue };
                let Ok(target) = host.read_link(format!("{dir}/{link}")) else { continue };
                let Some(name) = target.file_name().and_then(|n| n.to_str()) else { continue };
                *devs.entry(name).tag_mut(kind) = Some(decode_udev_name(link));
            }
        }
        devs.devices.sort_by(|a, b| a.name.cmp(&b.name));
        devs
    }

    fn entry(&mut self, name: &str) -> &mut BlockDevice {
        let i = match self.devices.iter().position(|d| d.name == name) {
            Some(i) => i,
            None => {
                self.devices.push(BlockDevice {
                    name: name.to_owned(),
                    // sysfs writes '/' in a kernel name as '!' (cciss!c0d0).
                    devnode: format!("/dev/{}", name.replace('!', "/")),
                    ..BlockDevice::default()
                });
                self.devices.len() - 1
            }
        };
        &mut self.devices[i]
    }

    /// Adds what the udev database knows; true when it knew anything (udev is running).
    #[cfg(feature = "udev")]
    fn overlay_udev(&mut self) -> std::io::Result<bool> {
        let mut e = udev::Enumerator::new()?;
        e.match_subsystem("block")?;
        let mut any = false;
        for d in e.scan_devices()? {
            let name = d.sysname().to_string_lossy().into_owned();
            let prop =
                |k: &str| d.property_value(k).map(|v| v.to_string_lossy().into_owned()).filter(|v| !v.is_empty());
            // The *_ENC values keep every byte (udev-escaped); the plain ones replace unsafe
            // characters with '_'.
            let encoded = |enc: &str, plain: &str| prop(enc).map(|v| decode_udev_name(&v)).or_else(|| prop(plain));
            let facts = [
                (TagKind::Uuid, encoded("ID_FS_UUID_ENC", "ID_FS_UUID")),
                (TagKind::Label, encoded("ID_FS_LABEL_ENC", "ID_FS_LABEL")),
                (TagKind::PartUuid, prop("ID_PART_ENTRY_UUID")),
                (TagKind::PartLabel, prop("ID_PART_ENTRY_NAME").map(|v| decode_udev_name(&v))),
            ];
            let fstype = prop("ID_FS_TYPE");
            let devnum = d.devnum().map(|n| DevNumber { major: rustix::fs::major(n), minor: rustix::fs::minor(n) });
            let devnode = d.devnode().map(|p| p.to_string_lossy().into_owned());
            let dev = self.entry(&name);
            if let Some(n) = devnode {
                dev.devnode = n;
            }
            if devnum.is_some() {
                dev.devnum = devnum;
            }
            for (kind, value) in facts {
                if value.is_some() {
                    any = true;
                    *dev.tag_mut(kind) = value;
                }
            }
            if fstype.is_some() {
                any = true;
                dev.fstype = fstype;
            }
        }
        Ok(any)
    }

    /// The device whose tag `kind` is `value` (exact match, as udev's links and mount(8) do).
    pub fn by_tag(&self, kind: TagKind, value: &str) -> Option<&BlockDevice> {
        self.devices.iter().find(|d| d.tag(kind) == Some(value))
    }

    /// The device with number `dev`.
    pub fn by_devnum(&self, dev: DevNumber) -> Option<&BlockDevice> {
        self.devices.iter().find(|d| d.devnum == Some(dev))
    }

    /// The device with kernel name `name`.
    pub fn by_name(&self, name: &str) -> Option<&BlockDevice> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The device a path names: `/dev/sdb1`, `/dev/mapper/data-data` (a link to `../dm-0`),
    /// `/dev/disk/by-id/...`. Links are followed inside the host root.
    pub fn by_path(&self, host: &Host, path: &str) -> Option<&BlockDevice> {
        if let Ok(real) = host.canonical(path) {
            if let Some(d) = real.strip_prefix("/dev").ok().and_then(|n| n.to_str()).and_then(|n| self.by_name(n)) {
                return Some(d);
            }
            if let Some(rdev) = host.stat(&real).ok().and_then(|s| s.rdev) {
                return self.by_devnum(rdev);
            }
        }
        None
    }

    /// The device an fstab source names, if it names a block device that exists. A
    /// `/dev/disk/by-*` path is looked up as its link, falling back to the tag it encodes.
    pub fn find(&self, host: &Host, source: &Source) -> Option<&BlockDevice> {
        match source {
            Source::Path(p) => self.by_path(host, p).or_else(|| source.tag().and_then(|(k, v)| self.by_tag(k, &v))),
            Source::Other(_) => None,
            _ => source.tag().and_then(|(k, v)| self.by_tag(k, &v)),
        }
    }

    /// The device behind a mount: by its `major:minor` (block filesystems), else by the mount
    /// source path (btrfs and others report an anonymous `0:N`).
    pub fn of_mount(&self, host: &Host, major: u32, minor: u32, source: Option<&str>) -> Option<&BlockDevice> {
        self.by_devnum(DevNumber { major, minor })
            .filter(|_| major != 0)
            .or_else(|| source.filter(|s| s.starts_with("/dev/")).and_then(|s| self.by_path(host, s)))
    }
}

/// Parses sysfs's `dev` attribute, `8:17\n`.
pub fn parse_devnum(s: &str) -> Option<DevNumber> {
    let (a, b) = s.trim().split_once(':')?;
    Some(DevNumber { major: a.parse().ok()?, minor: b.parse().ok()? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_and_sysfs_in_a_sysroot() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for (name, dev) in [("sda", "8:0"), ("sdb1", "8:17"), ("dm-0", "254:0")] {
            std::fs::create_dir_all(r.join(format!("sys/class/block/{name}"))).unwrap();
            std::fs::write(r.join(format!("sys/class/block/{name}/dev")), format!("{dev}\n")).unwrap();
            std::fs::create_dir_all(r.join("dev")).unwrap();
            std::fs::write(r.join(format!("dev/{name}")), "").unwrap();
        }
        for d in ["by-uuid", "by-label", "by-partuuid", "by-partlabel"] {
            std::fs::create_dir_all(r.join("dev/disk").join(d)).unwrap();
        }
        std::fs::create_dir_all(r.join("dev/mapper")).unwrap();
        symlink("../../sdb1", r.join("dev/disk/by-uuid/7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10")).unwrap();
        symlink("../../sdb1", r.join("dev/disk/by-label/Plex\\x20Storage")).unwrap();
        symlink("../../sdb1", r.join("dev/disk/by-partuuid/0e6b0f61-01")).unwrap();
        symlink("../../dm-0", r.join("dev/disk/by-uuid/1111")).unwrap();
        symlink("../dm-0", r.join("dev/mapper/data-data")).unwrap();

        let host = Host::at(r).unwrap();
        let devs = BlockDevices::from_links(&host);
        assert_eq!(devs.devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["dm-0", "sda", "sdb1"]);
        let sdb1 = devs.by_tag(TagKind::Uuid, "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10").unwrap();
        assert_eq!(sdb1.name, "sdb1");
        assert_eq!(sdb1.label.as_deref(), Some("Plex Storage"));
        assert_eq!(sdb1.partuuid.as_deref(), Some("0e6b0f61-01"));
        assert_eq!(sdb1.devnum, Some(DevNumber { major: 8, minor: 17 }));
        assert_eq!(sdb1.describe(), "/dev/sdb1 (UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10, LABEL=Plex Storage)");
        assert_eq!(devs.by_path(&host, "/dev/mapper/data-data").unwrap().name, "dm-0");
        assert_eq!(devs.of_mount(&host, 8, 17, None).unwrap().name, "sdb1");
        assert_eq!(devs.of_mount(&host, 0, 40, Some("/dev/mapper/data-data")).unwrap().name, "dm-0");
        let by_label = Source::Path("/dev/disk/by-label/Plex\\x20Storage".into());
        assert_eq!(devs.find(&host, &by_label).unwrap().name, "sdb1");
        assert!(devs.find(&host, &Source::Uuid("nope".into())).is_none());
        assert!(devs.find(&host, &Source::Path("/dev/sdz9".into())).is_none());
    }

    #[test]
    fn devnums() {
        assert_eq!(parse_devnum("8:17\n"), Some(DevNumber { major: 8, minor: 17 }));
        assert_eq!(parse_devnum("x"), None);
    }
}
