//! What a mount source names, as fstab(5) and mount(8) read `fs_spec`: a device tag
//! (`UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`), a path, or anything else; and the names udev
//! gives the `/dev/disk/by-*` links of tags.

use serde::{Deserialize, Serialize};

/// What `fs_spec` names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Source {
    /// `UUID=...`: a filesystem UUID (`/dev/disk/by-uuid/...`).
    Uuid(String),
    /// `LABEL=...`: a filesystem label (`/dev/disk/by-label/...`).
    Label(String),
    /// `PARTUUID=...`: a partition UUID, GPT or MBR (`/dev/disk/by-partuuid/...`).
    PartUuid(String),
    /// `PARTLABEL=...`: a GPT partition name (`/dev/disk/by-partlabel/...`).
    PartLabel(String),
    /// An absolute path: a device node (`/dev/sdb1`, `/dev/mapper/data-data`,
    /// `/dev/disk/by-uuid/...`), a bind mount's source directory or a swap file.
    Path(String),
    /// Anything else: `tmpfs`, `proc`, `none`, `nas:/export`, `//nas/share`.
    Other(String),
}

/// The tag names fstab(5) accepts in `fs_spec`, and the `/dev/disk` directory udev makes for
/// each.
pub const TAGS: [(&str, &str); 4] = [
    ("UUID", "/dev/disk/by-uuid/"),
    ("LABEL", "/dev/disk/by-label/"),
    ("PARTUUID", "/dev/disk/by-partuuid/"),
    ("PARTLABEL", "/dev/disk/by-partlabel/"),
];

impl Source {
    /// Classifies an (unescaped) `fs_spec`.
    pub fn parse(spec: &str) -> Source {
        if let Some((name, value)) = spec.split_once('=') {
            let value = unquote(value).to_owned();
            match name {
                "UUID" => return Source::Uuid(value),
                "LABEL" => return Source::Label(value),
                "PARTUUID" => return Source::PartUuid(value),
                "PARTLABEL" => return Source::PartLabel(value),
                _ => {}
            }
        }
        if spec.starts_with('/') && !spec.starts_with("//") {
            Source::Path(spec.to_owned())
        } else {
            Source::Other(spec.to_owned())
        }
    }

    /// The tag this source names, directly (`UUID=x`) or through a udev link
    /// (`/dev/disk/by-uuid/x`, whose name udev escapes: `by-label/Plex\x20Drive` is the label
    /// `Plex Drive`). `None` for other paths and other sources.
    pub fn tag(&self) -> Option<(TagKind, String)> {
        match self {
            Source::Uuid(v) => Some((TagKind::Uuid, v.clone())),
            Source::Label(v) => Some((TagKind::Label, v.clone())),
            Source::PartUuid(v) => Some((TagKind::PartUuid, v.clone())),
            Source::PartLabel(v) => Some((TagKind::PartLabel, v.clone())),
            Source::Path(p) => TagKind::ALL.into_iter().find_map(|k| {
                let name = p.strip_prefix(k.dir())?;
                (!name.is_empty() && !name.contains('/')).then(|| (k, decode_udev_name(name)))
            }),
            Source::Other(_) => None,
        }
    }

    /// Whether this names a block device (a tag, or a path under `/dev/`).
    pub fn is_block_device(&self) -> bool {
        match self {
            Source::Path(p) => p.starts_with("/dev/"),
            Source::Other(_) => false,
            _ => true,
        }
    }
}

/// The kinds of device tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagKind {
    /// Filesystem UUID.
    Uuid,
    /// Filesystem label.
    Label,
    /// Partition UUID.
    PartUuid,
    /// Partition label (GPT name).
    PartLabel,
}

impl TagKind {
    /// Every kind, in the order of [`TAGS`].
    pub const ALL: [TagKind; 4] = [TagKind::Uuid, TagKind::Label, TagKind::PartUuid, TagKind::PartLabel];

    /// `UUID`, `LABEL`, `PARTUUID`, `PARTLABEL`.
    pub fn name(self) -> &'static str {
        TAGS[self as usize].0
    }

    /// The directory of udev's links for this kind: `/dev/disk/by-uuid/`.
    pub fn dir(self) -> &'static str {
        TAGS[self as usize].1
    }
}

/// Decodes a udev link name: udev writes bytes outside `[0-9A-Za-z#+-.:=@_]` as `\xNN`
/// (`Plex\x20Drive`).
pub fn decode_udev_name(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&name[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a tag value as udev names its link (the inverse of [`decode_udev_name`]): ASCII
/// outside `[0-9A-Za-z#+-.:=@_]` becomes `\xNN`, other UTF-8 is kept.
pub fn encode_udev_name(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if !c.is_ascii() || c.is_ascii_alphanumeric() || "#+-.:=@_".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
    }
    out
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Source::Path("/dev/disk/by-uuid/7c1f".into()), Some((TagKind::Uuid, "7c1f")))]
    #[case(Source::Path("/dev/disk/by-label/Plex\\x20Drive".into()), Some((TagKind::Label, "Plex Drive")))]
    #[case(Source::Path("/dev/disk/by-partuuid/0e6b0f61-01".into()), Some((TagKind::PartUuid, "0e6b0f61-01")))]
    #[case(Source::Path("/dev/disk/by-partlabel/EFI\\x20system".into()), Some((TagKind::PartLabel, "EFI system")))]
    #[case(Source::Path("/dev/disk/by-id/ata-X-part1".into()), None)]
    #[case(Source::Path("/dev/disk/by-uuid/".into()), None)]
    #[case(Source::Label("x".into()), Some((TagKind::Label, "x")))]
    #[case(Source::Other("tmpfs".into()), None)]
    fn tags(#[case] s: Source, #[case] want: Option<(TagKind, &str)>) {
        assert_eq!(s.tag(), want.map(|(k, v)| (k, v.to_owned())));
    }

    #[rstest]
    #[case("Plex Drive", "Plex\\x20Drive")]
    #[case("EFI/boot", "EFI\\x2fboot")]
    #[case("a_b-c.d:e=f@g#h+i", "a_b-c.d:e=f@g#h+i")]
    #[case("Müll", "Müll")]
    fn udev_names(#[case] value: &str, #[case] link: &str) {
        assert_eq!(encode_udev_name(value), link);
        assert_eq!(decode_udev_name(link), value);
    }
}
