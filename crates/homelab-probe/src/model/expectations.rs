//! [`Expectations`]: what the new host must satisfy, read from `homelab-probe.toml`.
//!
//! The file is TOML, versioned by a mandatory top-level `version = 1`. Unknown keys are
//! errors (a typo must not silently disable a check), reported with file, line and column.
//!
//! ```toml
//! version = 1
//!
//! [groups]              # group name = gid
//! render = 110
//!
//! [users.palav]         # user name: uid and the groups the user must be in
//! uid = 1000
//! groups = ["render", "docker"]
//!
//! [render]              # every /dev/dri/renderD* node
//! group = "render"      # must be owned by this group (default "render")
//! mode = "0660"         # and have this mode (optional)
//! required = true       # at least one render node must exist (default false)
//!
//! [[render.access]]     # these credentials must be able to open every render node read/write
//! name = "plex"         # a label for the report
//! uid = 1000            # PUID
//! gid = 110             # PGID
//! groups = []           # supplementary gids (docker's group_add)
//!
//! [gpu]                 # optional; without it the GPU probes only report
//! nvenc = ["h264", "hevc"]      # NVENC must encode these on some NVIDIA GPU
//! nvidia_containers = true      # a stack reserves an NVIDIA GPU: containers must get one
//!
//! [gpu.vaapi]
//! encode = ["hevc"]             # VA-API encode entrypoints that must exist
//! node = "/dev/dri/renderD128"  # on this node (default: on any render node)
//! [[mounts]]            # a filesystem that must be mounted (see model::mounts)
//! path = "/mnt/PlexStorage"
//! uuid = "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10"
//! fstype = "ext4"
//! options = ["rw"]
//!
//! [[drift]]             # file-ownership drift under a data root (bounded scan)
//! root = "/mnt/PlexStorage"
//! uid = 1000
//! gid = 110
//! exclude = [".Trash-*"] # optional globs (names, or paths below the root when they hold `/`)
//! max_seconds = 60      # optional: stop after this long (default 60)
//! max_entries = 5000000 # optional: stop after about this many entries (default: none)
//!
//! [[baseline]]          # owners and modes as a baseline recorded them (mixed-owner trees)
//! file = "/var/lib/homelab-probe/appdata.baseline"  # from `homelab-verify baseline take`
//! map = ["/srv/appdata=/mnt/data/appdata"]           # optional: a root that now mounts elsewhere
//! by_name = false       # optional: compare owners by user/group name (ids renumbered on purpose)
//! max_seconds = 60      # optional: stop after this long (default 60)
//! max_entries = 5000000 # optional: stop after about this many entries (default: none)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::model::fs::FileMode;
use crate::model::text::line_col;

pub use crate::model::inventory::VideoCodec;

/// The `version` this library reads and writes.
pub const EXPECTATIONS_VERSION: u32 = 1;

/// What the host must satisfy. See the [module documentation](self) for the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Expectations {
    /// Format version; must be [`EXPECTATIONS_VERSION`].
    pub version: u32,
    /// Groups that must exist with exactly this gid: name -> gid.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "named_map")]
    pub groups: BTreeMap<String, u32>,
    /// Users that must exist: name -> uid and group membership.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "named_map")]
    pub users: BTreeMap<String, UserExpectation>,
    /// Render nodes (`/dev/dri/renderD*`): owner group, mode, who must be able to open them.
    /// `None` skips the render-node expectations (the inventory is still reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderExpectation>,
    /// Filesystems that must be mounted (`[[mounts]]`). The host's own `/etc/fstab` entries are
    /// checked whether or not this is empty; an entry here for the same path replaces the
    /// fstab-derived expectation (docs/mounts.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::model::mounts::mount_list")]
    pub mounts: Vec<crate::model::mounts::MountExpectation>,
    /// GPU encoders and container GPU access (`[gpu]`). Without the section the GPU probes
    /// still report what exists and require nothing.
    #[serde(default, skip_serializing_if = "GpuExpectation::is_empty")]
    pub gpu: GpuExpectation,
    /// Data roots whose every entry must have one owner (`[[drift]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftExpectation>,
    /// Baselines of owners and modes to check the tree against (`[[baseline]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub baseline: Vec<BaselineExpectation>,
}

/// What the host's GPUs must be able to do (`[gpu]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuExpectation {
    /// Codecs NVENC must encode on at least one NVIDIA GPU: `h264`, `hevc` (NVML reports
    /// encoder capacity for these two only).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nvenc_codecs")]
    pub nvenc: Vec<VideoCodec>,
    /// VA-API encode entrypoints that must exist (`[gpu.vaapi]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vaapi: Option<VaapiExpectation>,
    /// A container stack reserves an NVIDIA GPU: containers must be able to get one (a CDI
    /// `nvidia.com/gpu` device Docker can use, or Docker's `nvidia` runtime).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nvidia_containers: bool,
}

impl GpuExpectation {
    /// Whether nothing is required.
    pub fn is_empty(&self) -> bool {
        self == &GpuExpectation::default()
    }
}

/// VA-API encode entrypoints that must exist (`[gpu.vaapi]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaapiExpectation {
    /// Codecs that must have an encode entrypoint (`EncSlice` or `EncSliceLP`): `h264`,
    /// `hevc`, `av1`.
    pub encode: Vec<VideoCodec>,
    /// The render node that must offer them (`/dev/dri/renderD128`); without it, any render
    /// node will do.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "render_node_path")]
    pub node: Option<String>,
}

fn nvenc_codecs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<VideoCodec>, D::Error> {
    let codecs = Vec::<VideoCodec>::deserialize(d)?;
    if codecs.contains(&VideoCodec::Av1) {
        return Err(serde::de::Error::custom(
            "NVML reports NVENC capacity for h264 and hevc only, so `av1` cannot be required here",
        ));
    }
    Ok(codecs)
}

fn render_node_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let p = String::deserialize(d)?;
    if !crate::model::inventory::is_render_node(&p) {
        return Err(serde::de::Error::custom(format!("{p:?} is not a render node (/dev/dri/renderD128)")));
    }
    Ok(Some(p))
}

/// One `[[drift]]` section: every entry under `root` must be owned by `uid`:`gid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftExpectation {
    /// The directory to scan, an absolute host path (`/` is refused).
    #[serde(deserialize_with = "drift_root")]
    pub root: String,
    /// The uid every entry must have.
    pub uid: u32,
    /// The gid every entry must have.
    pub gid: u32,
    /// Glob patterns of entries to skip (see [`Exclude`](crate::model::exclude::Exclude)).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "globs")]
    pub exclude: Vec<String>,
    /// Descend into other filesystems under the root.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cross_mounts: bool,
    /// Stop after about this many entries (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// Stop after this many seconds (default [`DriftExpectation::DEFAULT_MAX_SECONDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<u64>,
}

impl DriftExpectation {
    /// The time limit of a `[[drift]]` scan when `max_seconds` is not given: `check` runs at
    /// every switch and boot and must end.
    pub const DEFAULT_MAX_SECONDS: u64 = 60;
}

/// One `[[baseline]]` section: every entry the baseline `file` recorded must still have its
/// owner, group, mode and type (`homelab-verify baseline check FILE`, bounded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineExpectation {
    /// The baseline file (`homelab-verify baseline take ... -o FILE`), an absolute host path.
    #[serde(deserialize_with = "absolute_path")]
    pub file: String,
    /// Roots that moved since the baseline was taken: `OLD=NEW`, both absolute (`--map`).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "path_maps")]
    pub map: Vec<String>,
    /// Compare owners by user and group name where both hosts have one (`--by-name`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub by_name: bool,
    /// Stop after about this many entries (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// Stop after this many seconds (default [`DriftExpectation::DEFAULT_MAX_SECONDS`]: the
    /// check runs at every switch and boot and must end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<u64>,
}

impl BaselineExpectation {
    /// `map` as (OLD, NEW) pairs (checked when read).
    pub fn map_pairs(&self) -> Vec<(PathBuf, PathBuf)> {
        self.map.iter().filter_map(|m| split_map(m)).collect()
    }
}

/// `OLD=NEW` with both sides absolute.
pub fn split_map(m: &str) -> Option<(PathBuf, PathBuf)> {
    let (old, new) = m.split_once('=')?;
    (old.starts_with('/') && new.starts_with('/')).then(|| (PathBuf::from(old), PathBuf::from(new)))
}

fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let p = String::deserialize(d)?;
    if !p.starts_with('/') {
        return Err(serde::de::Error::custom(format!("{p:?} must be an absolute path")));
    }
    Ok(p)
}

fn path_maps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let maps = Vec::<String>::deserialize(d)?;
    for m in &maps {
        if split_map(m).is_none() {
            return Err(serde::de::Error::custom(format!("map {m:?}: expected OLD=NEW, two absolute paths")));
        }
    }
    Ok(maps)
}

fn drift_root<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let root = String::deserialize(d)?;
    if !root.starts_with('/') {
        return Err(serde::de::Error::custom(format!("drift root {root:?} must be an absolute path")));
    }
    if Path::new(&root).components().all(|c| matches!(c, std::path::Component::RootDir)) {
        return Err(serde::de::Error::custom("drift root `/` is refused: name the data directory (e.g. /mnt/media)"));
    }
    Ok(root)
}

fn globs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let globs = Vec::<String>::deserialize(d)?;
    crate::model::exclude::Exclude::new(&globs)
        .map_err(|e| serde::de::Error::custom(format!("bad exclude pattern: {e}")))?;
    Ok(globs)
}

/// One expected user.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserExpectation {
    /// The uid the user must have; `None` only requires the user to exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Groups (by name) the user must be a member of, as primary or supplementary group.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "name_list")]
    pub groups: Vec<String>,
}

/// Expectations on every render node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderExpectation {
    /// The group that must own each render node.
    #[serde(default = "default_render_group", deserialize_with = "name")]
    pub group: String,
    /// The exact permission bits each render node must have. Bits beyond these (e.g. 0666
    /// where 0660 is expected) are a warning; missing bits are a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
    /// Whether at least one render node must exist (a host without a GPU then fails).
    #[serde(default)]
    pub required: bool,
    /// Render nodes that must exist by path (e.g. `/dev/dri/renderD128`); checks apply to all
    /// nodes present either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "dri_paths")]
    pub nodes: Vec<String>,
    /// Credentials that must be able to open every render node for reading and writing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<AccessExpectation>,
}

/// A map keyed by user or group names, each checked by [`crate::model::text::validate_name`].
fn named_map<'de, D: Deserializer<'de>, V: Deserialize<'de>>(d: D) -> Result<BTreeMap<String, V>, D::Error> {
    let map = BTreeMap::<String, V>::deserialize(d)?;
    for name in map.keys() {
        crate::model::text::validate_name(name)
            .map_err(|e| serde::de::Error::custom(format!("invalid name {name:?}: {e}")))?;
    }
    Ok(map)
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = String::deserialize(d)?;
    crate::model::text::validate_name(&name)
        .map_err(|e| serde::de::Error::custom(format!("invalid name {name:?}: {e}")))?;
    Ok(name)
}

fn name_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    for name in &names {
        crate::model::text::validate_name(name)
            .map_err(|e| serde::de::Error::custom(format!("invalid name {name:?}: {e}")))?;
    }
    Ok(names)
}

fn dri_paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let paths = Vec::<String>::deserialize(d)?;
    for p in &paths {
        let rest = p.strip_prefix("/dev/dri/").unwrap_or_default();
        if rest.is_empty() || rest.contains('/') {
            return Err(serde::de::Error::custom(format!("{p:?} is not a node directly under /dev/dri/")));
        }
    }
    Ok(paths)
}

fn default_render_group() -> String {
    "render".to_owned()
}

impl Default for RenderExpectation {
    fn default() -> Self {
        RenderExpectation {
            group: default_render_group(),
            mode: None,
            required: false,
            nodes: Vec::new(),
            access: Vec::new(),
        }
    }
}

/// Process credentials that must be able to open a device, e.g. a container's PUID/PGID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessExpectation {
    /// A label for the report (`plex`, `jellyfin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Effective uid of the process (PUID).
    pub uid: u32,
    /// Effective gid of the process (PGID).
    pub gid: u32,
    /// Supplementary gids (docker `group_add`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<u32>,
    /// The host user in whose user namespace the process runs rootless (rootless Podman or
    /// Docker). Its `uid`/`gid` are then ids of that namespace, mapped through `/etc/subuid`
    /// and `/etc/subgid` to ids no host user or group has: without [`Self::keep_groups`] only
    /// the node's other bits can let it in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless: Option<String>,
    /// With [`Self::rootless`]: the runtime keeps the owner's host groups (`--group-add
    /// keep-groups`, `GroupAdd=keep-groups`, `run.oci.keep_original_groups=1`), so the owner's
    /// host credentials, looked up by name on the checked host, are what opens the node.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_groups: bool,
}

impl AccessExpectation {
    /// `plex (uid 1000, gid 110)` or `uid 1000, gid 110, groups 44`.
    pub fn describe(&self) -> String {
        let mut s = format!("uid {}, gid {}", self.uid, self.gid);
        if !self.groups.is_empty() {
            let g: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            s.push_str(&format!(", groups {}", g.join(",")));
        }
        if let Some(owner) = &self.rootless {
            let keep = if self.keep_groups { "with" } else { "without" };
            s.push_str(&format!(", rootless in {owner}'s user namespace {keep} keep-groups"));
        }
        match &self.name {
            Some(n) => format!("{n} ({s})"),
            None => s,
        }
    }
}

/// Why an expectations file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectationsError {
    /// The file could not be read.
    #[error("{}: cannot read expectations: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid: bad TOML, unknown key, wrong type, unsupported version.
    #[error("{}{line}:{column}: {message}", file.as_ref().map(|f| format!("{}:", f.display())).unwrap_or_default())]
    Invalid {
        /// The file, when the text came from one (or was given a name).
        file: Option<PathBuf>,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl Expectations {
    /// The built-in defaults used when no file is given: every render node present must be
    /// usable by the `render` group; the identity probe checks the host's own consistency.
    pub fn builtin() -> Self {
        Expectations {
            version: EXPECTATIONS_VERSION,
            groups: BTreeMap::new(),
            users: BTreeMap::new(),
            render: Some(RenderExpectation::default()),
            gpu: GpuExpectation::default(),
            mounts: Vec::new(),
            drift: Vec::new(),
            baseline: Vec::new(),
        }
    }

    /// Parses and validates `text`. `source` names the file it came from in errors
    /// (`homelab-probe.toml:3:1: ...`); without it, errors give the line and column only.
    /// `text.parse::<Expectations>()` is the same without a name.
    pub fn from_toml_str(text: &str, source: Option<&Path>) -> Result<Self, ExpectationsError> {
        let invalid = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = line_col(text, span.map_or(0, |s| s.start));
            ExpectationsError::Invalid { file: source.map(Path::to_path_buf), line, column, message }
        };
        // Check the version first, so a newer file gets "unsupported version" rather than a
        // confusing complaint about keys this version does not know.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<toml::Spanned<i64>>,
        }
        let v: VersionOnly = toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_owned()))?;
        match v.version {
            None => {
                return Err(invalid(
                    None,
                    format!("missing `version = {EXPECTATIONS_VERSION}` at the top of the file"),
                ));
            }
            Some(v) if *v.get_ref() != i64::from(EXPECTATIONS_VERSION) => {
                return Err(invalid(
                    Some(v.span()),
                    format!(
                        "unsupported version {} (this homelab-probe reads version {EXPECTATIONS_VERSION})",
                        v.get_ref()
                    ),
                ));
            }
            Some(_) => {}
        }
        toml::from_str(text).map_err(|e| invalid(e.span(), e.message().to_owned()))
    }

    /// Renders the expectations as TOML (the inverse of [`Expectations::from_toml_str`]).
    pub fn to_toml_string(&self) -> String {
        // Our types are plain maps, strings and numbers: serialisation cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

impl std::str::FromStr for Expectations {
    type Err = ExpectationsError;

    /// [`Expectations::from_toml_str`] without a source name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Expectations::from_toml_str(text, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn parse(text: &str) -> Result<Expectations, ExpectationsError> {
        Expectations::from_toml_str(text, Some(Path::new("homelab-probe.toml")))
    }

    #[test]
    fn full_example_parses() {
        let e = parse(
            r#"version = 1
[groups]
render = 110
[users.palav]
uid = 1000
groups = ["render", "docker"]
[render]
mode = "0660"
required = true
[[render.access]]
name = "plex"
uid = 1000
gid = 110
"#,
        )
        .unwrap();
        assert_eq!(e.groups["render"], 110);
        assert_eq!(e.users["palav"].uid, Some(1000));
        let r = e.render.as_ref().unwrap();
        assert_eq!(r.group, "render");
        assert_eq!(r.mode, Some(FileMode(0o660)));
        assert_eq!(r.access[0].describe(), "plex (uid 1000, gid 110)");
        // And it round-trips through our own writer.
        assert_eq!(parse(&e.to_toml_string()).unwrap(), e);
    }

    #[test]
    fn gpu_section_parses_and_round_trips() {
        let e = parse(
            "version = 1\n[gpu]\nnvenc = [\"h264\", \"hevc\"]\nnvidia_containers = true\n[gpu.vaapi]\nencode = [\"hevc\", \"av1\"]\nnode = \"/dev/dri/renderD128\"\n",
        )
        .unwrap();
        assert_eq!(e.gpu.nvenc, [VideoCodec::H264, VideoCodec::Hevc]);
        assert!(e.gpu.nvidia_containers);
        let v = e.gpu.vaapi.as_ref().unwrap();
        assert_eq!(
            (v.encode.as_slice(), v.node.as_deref()),
            ([VideoCodec::Hevc, VideoCodec::Av1].as_slice(), Some("/dev/dri/renderD128"))
        );
        assert_eq!(parse(&e.to_toml_string()).unwrap(), e);
        // No [gpu]: nothing required, and nothing written back.
        let plain = parse("version = 1\n").unwrap();
        assert!(plain.gpu.is_empty());
        assert!(!plain.to_toml_string().contains("gpu"));
    }

    #[rstest]
    #[case::unknown_top_key("version = 1\n[grops]\nrender = 110\n", 2, "unknown field `grops`")]
    #[case::unknown_nested_key("version = 1\n[users.palav]\nuid = 1000\ngropus = []\n", 4, "unknown field `gropus`")]
    #[case::bad_toml("version = 1\n[groups\nrender = 110\n", 2, "")]
    #[case::wrong_type("version = 1\n[groups]\nrender = \"110\"\n", 3, "expected u32")]
    #[case::negative_gid("version = 1\n[groups]\nrender = -1\n", 3, "")]
    #[case::bad_mode("version = 1\n[render]\nmode = \"0998\"\n", 3, "octal")]
    #[case::missing_version("[groups]\nrender = 110\n", 1, "missing `version = 1`")]
    #[case::future_version("\n\nversion = 2\n[future]\nx = 1\n", 3, "unsupported version 2")]
    #[case::bad_member("version = 1\n[users.palav]\ngroups = [\"a:b\"]\n", 3, "invalid name")]
    #[case::bad_node("version = 1\n[render]\nnodes = [\"/dev/sda\"]\n", 3, "not a node directly under /dev/dri/")]
    #[case::bad_name("version = 1\n[groups]\n\"ren der\" = 110\n", 2, "invalid name")]
    #[case::gpu_unknown_key("version = 1\n[gpu]\nnvec = [\"h264\"]\n", 3, "unknown field `nvec`")]
    #[case::gpu_unknown_codec("version = 1\n[gpu]\nnvenc = [\"h265\"]\n", 3, "unknown variant `h265`")]
    #[case::gpu_nvenc_av1("version = 1\n[gpu]\nnvenc = [\"av1\"]\n", 3, "h264 and hevc only")]
    #[case::gpu_vaapi_node(
        "version = 1\n[gpu.vaapi]\nencode = [\"hevc\"]\nnode = \"/dev/dri/card0\"\n",
        4,
        "not a render node"
    )]
    #[case::gpu_vaapi_no_encode(
        "version = 1\n[gpu.vaapi]\nnode = \"/dev/dri/renderD128\"\n",
        2,
        "missing field `encode`"
    )]
    fn bad_input_names_file_and_line(#[case] text: &str, #[case] line: usize, #[case] needle: &str) {
        let err = parse(text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("homelab-probe.toml:{line}:")), "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }

    #[rstest]
    #[case("0660", Some(0o660))]
    #[case("660", Some(0o660))]
    #[case("0o666", Some(0o666))]
    #[case("2775", Some(0o2775))]
    #[case("", None)]
    #[case("9", None)]
    #[case("77777", None)]
    #[case("0x660", None)]
    fn file_mode_parse(#[case] s: &str, #[case] want: Option<u32>) {
        assert_eq!(FileMode::parse(s).map(|m| m.0), want);
    }
}
