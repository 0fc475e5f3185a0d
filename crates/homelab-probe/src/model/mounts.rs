//! `[[mounts]]` of the expectations file: a filesystem that must be mounted at a path.
//!
//! ```toml
//! [[mounts]]
//! path = "/mnt/PlexStorage"                      # the mount point
//! uuid = "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10"  # or label = "...", or device = "/dev/mapper/data-data"
//! fstype = "ext4"                                # optional
//! options = ["rw"]                               # optional: must hold on the mounted filesystem
//! required = true                                # default; false: not mounted is a warning
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::source::Source;

/// One expected mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawMount")]
pub struct MountExpectation {
    /// The mount point: absolute, without a trailing `/`, `.` or `..`.
    pub path: String,
    /// Filesystem UUID of the device that must be mounted there (`lsblk -f`, `blkid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Filesystem label instead of a UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A device path instead (`/dev/mapper/data-data`, `/dev/disk/by-id/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Filesystem type as the mount table shows it (`ext4`, `xfs`, `btrfs`, `fuse.sshfs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fstype: Option<String>,
    /// Options that must hold: `rw` or `ro` (checked against the mount's state), and kernel
    /// options such as `noatime` or `nosuid` (present in the per-mount or superblock options).
    /// Userspace-only options (`nofail`, `noauto`, `x-systemd.*`, `_netdev`...) leave no trace
    /// in the mount table and are not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Whether the mount must be there (default). `false` (a removable backup disk): not being
    /// mounted is a warning; data written to the bare directory still fails.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// The same fields, unchecked (serde reads this, then [`MountExpectation::try_from`] checks).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    path: String,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    device: Option<String>,
    #[serde(default)]
    fstype: Option<String>,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default = "yes")]
    required: bool,
}

impl TryFrom<RawMount> for MountExpectation {
    type Error = String;

    fn try_from(r: RawMount) -> Result<Self, String> {
        check_mount_point(&r.path)?;
        let given = [("uuid", &r.uuid), ("label", &r.label), ("device", &r.device)]
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k)
            .collect::<Vec<_>>();
        if given.len() > 1 {
            return Err(format!("mount {}: give one of uuid, label or device, not {}", r.path, given.join(" and ")));
        }
        for (k, v) in [("uuid", &r.uuid), ("label", &r.label), ("device", &r.device), ("fstype", &r.fstype)] {
            if v.as_deref().is_some_and(|v| v.is_empty() || v.contains(['\n', '\0'])) {
                return Err(format!("mount {}: {k} must be a non-empty single line", r.path));
            }
        }
        if let Some(d) = &r.device {
            if !d.starts_with('/') {
                return Err(format!("mount {}: device {d:?} must be an absolute path", r.path));
            }
        }
        if let Some(t) = &r.fstype {
            if t.contains([' ', '\t', ',']) {
                return Err(format!("mount {}: fstype {t:?} is one type, without blanks or commas", r.path));
            }
        }
        for o in &r.options {
            if o.is_empty() || o.contains([',', ' ', '\t', '\n', '\0']) {
                return Err(format!(
                    "mount {}: option {o:?} must be one option (no commas or blanks): options = [\"rw\", \"noatime\"]",
                    r.path
                ));
            }
        }
        if r.options.iter().any(|o| o == "ro") && r.options.iter().any(|o| o == "rw") {
            return Err(format!("mount {}: options cannot hold both rw and ro", r.path));
        }
        Ok(MountExpectation {
            path: r.path,
            uuid: r.uuid,
            label: r.label,
            device: r.device,
            fstype: r.fstype,
            options: r.options,
            required: r.required,
        })
    }
}

/// Checks a mount point: absolute, normalised (no empty, `.` or `..` components, no trailing
/// `/` except for `/` itself), one line.
pub fn check_mount_point(path: &str) -> Result<(), String> {
    let ok = path == "/"
        || (path.starts_with('/')
            && path[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..")
            && !path.contains(['\n', '\0']));
    if ok {
        Ok(())
    } else {
        Err(format!("mount path {path:?} must be an absolute, normalised path (no trailing '/', '//', '.' or '..')"))
    }
}

impl MountExpectation {
    /// The expected source as an fstab [`Source`] (`UUID=`, `LABEL=` or a path), if any.
    pub fn source(&self) -> Option<Source> {
        if let Some(u) = &self.uuid {
            Some(Source::Uuid(u.clone()))
        } else if let Some(l) = &self.label {
            Some(Source::Label(l.clone()))
        } else {
            self.device.as_deref().map(Source::parse)
        }
    }

    /// The source as fstab would spell it: `UUID=...`, `LABEL=...` or the device path.
    pub fn spec(&self) -> Option<String> {
        if let Some(u) = &self.uuid {
            Some(format!("UUID={u}"))
        } else if let Some(l) = &self.label {
            Some(format!("LABEL={l}"))
        } else {
            self.device.clone()
        }
    }
}

/// Deserialises the `[[mounts]]` list, refusing two entries for one path.
pub(crate) fn mount_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MountExpectation>, D::Error> {
    let list = Vec::<MountExpectation>::deserialize(d)?;
    let mut seen = BTreeSet::new();
    for m in &list {
        if !seen.insert(m.path.as_str()) {
            return Err(serde::de::Error::custom(format!("mount {} is listed twice", m.path)));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/", true)]
    #[case("/mnt/PlexStorage", true)]
    #[case("/mnt/Plex Drive", true)]
    #[case("/mnt/PlexStorage/", false)]
    #[case("mnt", false)]
    #[case("/mnt//x", false)]
    #[case("/mnt/../etc", false)]
    #[case("/mnt/./x", false)]
    #[case("", false)]
    fn mount_points(#[case] p: &str, #[case] ok: bool) {
        assert_eq!(check_mount_point(p).is_ok(), ok, "{p}");
    }

    #[test]
    fn sources() {
        let m = MountExpectation {
            path: "/srv".into(),
            uuid: None,
            label: None,
            device: Some("/dev/mapper/data-data".into()),
            fstype: None,
            options: vec![],
            required: true,
        };
        assert_eq!(m.source(), Some(Source::Path("/dev/mapper/data-data".into())));
        assert_eq!(m.spec().as_deref(), Some("/dev/mapper/data-data"));
    }
}

#[cfg(test)]
mod file_tests {
    use std::path::Path;

    use rstest::rstest;

    use crate::model::expectations::Expectations;

    fn parse(text: &str) -> Result<Expectations, String> {
        Expectations::from_toml_str(text, Some(Path::new("homelab-probe.toml"))).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_and_round_trips() {
        let e = parse(
            "version = 1\n[[mounts]]\npath = \"/mnt/PlexStorage\"\nuuid = \"7c1f\"\nfstype = \"ext4\"\noptions = [\"rw\"]\n\n[[mounts]]\npath = \"/mnt/backup\"\nlabel = \"backup\"\nrequired = false\n",
        )
        .unwrap();
        assert_eq!(e.mounts.len(), 2);
        assert!(e.mounts[0].required && !e.mounts[1].required);
        assert_eq!(e.mounts[0].spec().as_deref(), Some("UUID=7c1f"));
        assert_eq!(parse(&e.to_toml_string()).unwrap(), e);
        assert!(parse("version = 1\n").unwrap().mounts.is_empty());
    }

    #[rstest]
    #[case::relative("version = 1\n[[mounts]]\npath = \"mnt/x\"\n", 2, "absolute, normalised path")]
    #[case::trailing_slash("version = 1\n[[mounts]]\npath = \"/mnt/x/\"\n", 2, "no trailing '/'")]
    #[case::two_sources(
        "version = 1\n[[mounts]]\npath = \"/x\"\nuuid = \"a\"\nlabel = \"b\"\n",
        2,
        "not uuid and label"
    )]
    #[case::unknown_key("version = 1\n[[mounts]]\npath = \"/x\"\nuid = \"a\"\n", 4, "unknown field `uid`")]
    #[case::comma_option("version = 1\n[[mounts]]\npath = \"/x\"\noptions = [\"rw,noatime\"]\n", 2, "one option")]
    #[case::rw_and_ro("version = 1\n[[mounts]]\npath = \"/x\"\noptions = [\"rw\", \"ro\"]\n", 2, "both rw and ro")]
    #[case::relative_device("version = 1\n[[mounts]]\npath = \"/x\"\ndevice = \"sdb1\"\n", 2, "absolute path")]
    #[case::twice("version = 1\n[[mounts]]\npath = \"/x\"\n[[mounts]]\npath = \"/x\"\n", 2, "listed twice")]
    fn bad_mounts_name_file_and_line(#[case] text: &str, #[case] line: usize, #[case] needle: &str) {
        let err = parse(text).unwrap_err();
        assert!(err.starts_with(&format!("homelab-probe.toml:{line}:")), "{err}");
        assert!(err.contains(needle), "{err}");
    }
}
