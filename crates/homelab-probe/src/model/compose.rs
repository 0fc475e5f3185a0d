//! Compose stacks as a snapshot records them: per service only what matters for a host move
//! (image, the credentials the container runs with, devices, GPU needs, host paths), normalised
//! the way `docker compose config` normalises them (long forms, absolute paths,
//! interpolated values). Written by the compose reader (`sources::compose`).
//!
//! Secrets stay out: of a service's environment only the variables in [`CAPTURED_ENV`] are
//! kept.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::text::ParseError;

/// Environment variables a snapshot keeps (everything else may be a secret and is dropped).
/// `PUID`/`PGID` are the linuxserver.io convention for the uid/gid a container runs as;
/// `NVIDIA_*` select GPUs for the NVIDIA container runtime.
pub const CAPTURED_ENV: &[&str] =
    &["PUID", "PGID", "UMASK", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "LIBVA_DRIVER_NAME"];

/// One Compose project (a directory with a compose file), or the quadlet `.container` units of
/// one directory ([`StackKind::Quadlet`]): the same shape, so everything that reads stacks reads
/// both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComposeStack {
    /// Project name: the top-level `name:`, `COMPOSE_PROJECT_NAME` from `.env`, or the directory
    /// name normalised as Compose does (lower case, only `[a-z0-9_-]`).
    pub name: String,
    /// The project directory (absolute, as the host names it).
    pub dir: String,
    /// The user the stack belongs to (whose home holds it, or who owns the directory).
    pub owner: Option<String>,
    /// Every compose file read: the main file(s) first, then included ones.
    pub files: Vec<String>,
    /// The files `docker compose --file` must be given to start it, when a plain `docker
    /// compose` in [`ComposeStack::dir`] would not find them: it was started with `-f` (the
    /// engine's labels say so) or named with `capture --compose-file`. Empty: the directory's
    /// own compose file (or `COMPOSE_FILE` in its `.env`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_files: Vec<String>,
    /// The `.env` file used for interpolation, when there is one.
    pub env_file: Option<String>,
    /// Profiles enabled by `COMPOSE_PROFILES` in `.env` (a plain `docker compose up` starts the
    /// services without profiles plus these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_profiles: Vec<String>,
    /// The services, in file order.
    pub services: Vec<ComposeService>,
    /// Variables used while unset (Compose substitutes an empty string and warns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset_variables: Vec<String>,
    /// What could not be read or understood, each with file and line; the rest is captured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ParseError>,
    /// A Compose project or quadlet units (absent: a Compose project).
    #[serde(default, skip_serializing_if = "StackKind::is_compose")]
    pub kind: StackKind,
    /// The engine that runs it, when capture knows: a daemon listed the project, or the units
    /// are quadlet's (Podman).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<Engine>,
    /// Whether it runs rootless: in a user namespace of [`ComposeStack::owner`] (rootless Podman
    /// or Docker), where a container's uid and gid map through `/etc/subuid` and `/etc/subgid`
    /// and are not host ids.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rootless: bool,
    /// How capture found it (absent: in a searched directory).
    #[serde(default, skip_serializing_if = "FoundBy::is_search_dir")]
    pub found_by: FoundBy,
}

/// How a stack's containers are defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    /// A Compose project (`docker compose`, `podman-compose`).
    #[default]
    Compose,
    /// Podman quadlet `.container` units (podman-systemd.unit(5)), one directory's worth.
    Quadlet,
}

impl StackKind {
    /// Whether it is [`StackKind::Compose`].
    pub fn is_compose(&self) -> bool {
        *self == StackKind::Compose
    }
}

/// A container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// Docker.
    Docker,
    /// Podman.
    Podman,
}

impl Engine {
    /// `Docker`, `Podman`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker => "Docker",
            Engine::Podman => "Podman",
        }
    }

    /// `docker`, `podman`.
    pub fn command(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// How capture found a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// A compose file by one of Compose's own names (or `COMPOSE_FILE` in `.env`) in a searched
    /// directory.
    #[default]
    SearchDir,
    /// Named with `capture --compose-file`.
    ComposeFileOption,
    /// The engine's containers name it (`com.docker.compose.project.config_files`).
    EngineLabels,
    /// A quadlet unit directory.
    QuadletDir,
}

impl FoundBy {
    /// Whether it is [`FoundBy::SearchDir`].
    pub fn is_search_dir(&self) -> bool {
        *self == FoundBy::SearchDir
    }
}

impl ComposeStack {
    /// How capture found it, for a summary line: empty for a stack found in a searched
    /// directory by its own name, else ` (FILES, how)`, e.g. ` (plex.yml, from Docker's labels)`.
    pub fn how_found(&self) -> String {
        let mut parts: Vec<String> =
            self.command_files.iter().map(|f| f.rsplit('/').next().unwrap_or(f).to_owned()).collect();
        match (self.found_by, self.engine) {
            (FoundBy::EngineLabels, Some(e)) => parts.push(format!("from {}'s labels", e.name())),
            (FoundBy::ComposeFileOption, _) => parts.push("--compose-file".into()),
            (FoundBy::QuadletDir, _) => parts.push("quadlet".into()),
            (FoundBy::SearchDir, Some(Engine::Podman)) if self.kind == StackKind::Compose => {
                parts.push("podman-compose".into())
            }
            _ => {}
        }
        if self.rootless {
            parts.push(format!("rootless, {}", self.owner.as_deref().unwrap_or("?")));
        }
        if parts.is_empty() { String::new() } else { format!(" ({})", parts.join(", ")) }
    }

    /// An empty Compose stack called `name` in `dir`.
    pub fn new(name: impl Into<String>, dir: impl Into<String>) -> Self {
        ComposeStack {
            name: name.into(),
            dir: dir.into(),
            owner: None,
            files: Vec::new(),
            command_files: Vec::new(),
            env_file: None,
            active_profiles: Vec::new(),
            services: Vec::new(),
            unset_variables: Vec::new(),
            problems: Vec::new(),
            kind: StackKind::Compose,
            engine: None,
            rootless: false,
            found_by: FoundBy::SearchDir,
        }
    }
}

/// `group_add` value (Podman's `--group-add keep-groups`, quadlet's `GroupAdd=keep-groups`) that
/// keeps the supplementary groups of the user who runs a rootless container, instead of
/// naming a group.
pub const KEEP_GROUPS: &str = "keep-groups";

/// The OCI annotation that makes crun and runc keep the caller's supplementary groups, the
/// runtime's side of [`KEEP_GROUPS`].
pub const KEEP_ORIGINAL_GROUPS_ANNOTATION: &str = "run.oci.keep_original_groups";

/// One service of a stack (a quadlet `.container` unit is one service).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ComposeService {
    /// Service name.
    pub name: String,
    /// The compose file that defines it.
    pub file: String,
    /// Line of its definition in that file.
    pub line: usize,
    /// `image:`, when set (a service may only have `build:`).
    pub image: Option<String>,
    /// `profiles:`; a service with profiles only starts when one of them is enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// The variables of [`CAPTURED_ENV`] from `environment:` and `env_file:` (`None`: named
    /// without a value and not set in `.env`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// `user:` (`"1000:110"`, `"1000"`, `"palav"`).
    pub user: Option<String>,
    /// `group_add:` entries as written (numbers or names; names resolve inside the container).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `devices:` in long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceMapping>,
    /// `runtime:` (`nvidia` for the legacy NVIDIA runtime).
    pub runtime: Option<String>,
    /// `deploy.resources.reservations.devices`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_reservations: Vec<DeviceReservation>,
    /// `gpus:` (`all`, or a list like the reservations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceReservation>,
    /// `volumes:` in long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    /// `userns_mode:` (Compose) or `UserNS=` (quadlet): `keep-id`, `auto`, `host`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<String>,
    /// Whether the runtime keeps the supplementary groups of the user who starts the container
    /// (`group_add: [keep-groups]`, `GroupAdd=keep-groups`, or the annotation
    /// `run.oci.keep_original_groups=1`): what lets a rootless container use the host's
    /// `render` membership.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_groups: bool,
}

/// A host device given to a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// Host path (`/dev/dri/renderD128`), or a CDI name (`nvidia.com/gpu=all`).
    pub source: String,
    /// Path inside the container.
    pub target: String,
    /// cgroup permissions, `rwm` by default.
    pub permissions: String,
}

impl DeviceMapping {
    /// Whether the source is a CDI device name (`vendor.com/class=name`) rather than a path.
    pub fn is_cdi(&self) -> bool {
        !self.source.starts_with('/') && self.source.contains('/') && self.source.contains('=')
    }
}

/// How many devices a reservation asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", untagged)]
pub enum DeviceCount {
    /// A number of devices.
    Count(u64),
    /// `all` (Compose writes -1).
    All(AllMarker),
}

/// The word `all` in a [`DeviceCount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllMarker {
    /// All devices.
    All,
}

/// A device reservation (`deploy.resources.reservations.devices[]` or `gpus:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeviceReservation {
    /// `driver:` (`nvidia`).
    pub driver: Option<String>,
    /// `count:`.
    pub count: Option<DeviceCount>,
    /// `device_ids:`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    /// `capabilities:` (`gpu`, `compute`, `video`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// The kind of a volume mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    /// A host path.
    Bind,
    /// A named or anonymous volume.
    Volume,
    /// A tmpfs.
    Tmpfs,
    /// Anything else (`npipe`, `cluster`, `image`).
    Other,
}

/// One entry of a service's `volumes:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// Bind, volume, tmpfs.
    pub kind: VolumeKind,
    /// For a bind: the absolute host path (relative paths resolved against the project
    /// directory, `~` against the stack owner's home). For a volume: its name (`None` for an
    /// anonymous volume).
    pub source: Option<String>,
    /// Path inside the container.
    pub target: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// The host directory behind the mount: the source of a bind, or the `device` of a named
    /// volume declared with the local driver's bind options (`driver_opts: {type: none, o:
    /// bind, device: /mnt/...}`). `None` for Docker-managed volumes.
    pub host_path: Option<String>,
}

/// The credentials a service's process runs with, as far as the compose file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary gids (numeric `group_add`).
    pub groups: Vec<u32>,
    /// Where uid and gid came from.
    pub source: CredentialSource,
    /// `group_add` names: they resolve inside the container image, not on the host.
    pub named_groups: Vec<String>,
    /// The runtime keeps the supplementary groups of whoever starts the container
    /// ([`ComposeService::keep_groups`]).
    pub keep_groups: bool,
}

/// Where a service's uid and gid come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `PUID` and `PGID` in the environment (linuxserver.io images drop to these).
    PuidPgid,
    /// A numeric `user:`.
    User,
}

impl CredentialSource {
    /// The compose field that sets the gid (`PGID`, `user`).
    pub fn gid_field(self) -> &'static str {
        match self {
            CredentialSource::PuidPgid => "PGID",
            CredentialSource::User => "user",
        }
    }
}

impl ComposeService {
    /// The credentials the service runs with: `PUID`/`PGID` when both are numbers, else a
    /// numeric `user:` (`"1000:110"`; a bare `"1000"` takes its gid from `primary_gid_of`, as
    /// Docker takes it from the image's passwd entry, else 0). `Err` says why they cannot be
    /// known from the compose file (a user name, or nothing set: the image decides).
    pub fn credentials(&self, primary_gid_of: &dyn Fn(u32) -> Option<u32>) -> Result<Credentials, String> {
        let num = |s: Option<&str>| s.and_then(|v| v.trim().parse::<u32>().ok());
        let keep_groups = self.keep_groups || self.group_add.iter().any(|g| g == KEEP_GROUPS);
        let (numeric, named_groups): (Vec<String>, Vec<String>) =
            self.group_add.iter().filter(|g| *g != KEEP_GROUPS).cloned().partition(|g| g.parse::<u32>().is_ok());
        let groups: Vec<u32> = numeric.iter().filter_map(|g| g.parse().ok()).collect();
        if let (Some(uid), Some(gid)) = (num(self.env("PUID")), num(self.env("PGID"))) {
            return Ok(Credentials { uid, gid, groups, source: CredentialSource::PuidPgid, named_groups, keep_groups });
        }
        let Some(user) = self.user.as_deref() else {
            return Err("neither PUID/PGID nor user: is set: it runs as the image's user".into());
        };
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        let Some(uid) = num(Some(u)) else {
            return Err(format!("user: {user:?} names a user of the image, resolved inside the container"));
        };
        let gid = match g {
            Some(g) => num(Some(g)).ok_or_else(|| format!("user: {user:?}: the group is a name of the image"))?,
            None => primary_gid_of(uid).unwrap_or(0),
        };
        Ok(Credentials { uid, gid, groups, source: CredentialSource::User, named_groups, keep_groups })
    }

    /// Whether the service starts on a plain `docker compose up` given the enabled profiles.
    pub fn is_active(&self, active_profiles: &[String]) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| active_profiles.contains(p) || p == "*")
    }

    /// The value of an environment variable the snapshot kept.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.environment.get(name).and_then(|v| v.as_deref())
    }

    /// Host device paths under `/dev/dri` the service maps (`/dev/dri` itself or nodes in it).
    pub fn dri_devices(&self) -> Vec<&str> {
        self.devices
            .iter()
            .map(|d| d.source.as_str())
            .filter(|s| *s == "/dev/dri" || s.starts_with("/dev/dri/"))
            .collect()
    }

    /// Whether the service asks the NVIDIA GPU for video (NVENC/NVDEC): a reservation with the
    /// `video` capability, or `NVIDIA_DRIVER_CAPABILITIES` with `video` or `all`.
    pub fn wants_nvidia_video(&self) -> bool {
        let res =
            self.device_reservations.iter().chain(&self.gpus).any(|r| r.capabilities.iter().any(|c| c == "video"));
        let env = self
            .env("NVIDIA_DRIVER_CAPABILITIES")
            .is_some_and(|v| v.split(',').any(|c| matches!(c.trim(), "video" | "all")));
        res || env
    }

    /// Why the service needs an NVIDIA GPU, if it does: `runtime: nvidia`, an NVIDIA device
    /// reservation or `gpus:`, a CDI `nvidia.com/gpu` device, `/dev/nvidia*` devices, or
    /// `NVIDIA_VISIBLE_DEVICES` set to something other than `void`/`none`.
    pub fn nvidia_reasons(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.runtime.as_deref() == Some("nvidia") {
            why.push("runtime: nvidia".to_owned());
        }
        let nvidia_res = |r: &DeviceReservation| {
            r.driver.as_deref() == Some("nvidia") || (r.driver.is_none() && r.capabilities.iter().any(|c| c == "gpu"))
        };
        if self.device_reservations.iter().any(nvidia_res) {
            why.push("deploy.resources.reservations.devices (nvidia)".to_owned());
        }
        if !self.gpus.is_empty() {
            why.push("gpus:".to_owned());
        }
        for d in &self.devices {
            if (d.is_cdi() && d.source.starts_with("nvidia.com/")) || d.source.starts_with("/dev/nvidia") {
                why.push(format!("devices: {}", d.source));
            }
        }
        if let Some(v) = self.env("NVIDIA_VISIBLE_DEVICES") {
            if !matches!(v, "" | "void" | "none") {
                why.push(format!("NVIDIA_VISIBLE_DEVICES={v}"));
            }
        }
        why
    }
}

/// A Compose project a container engine knows, from the labels Compose (and podman-compose) put
/// on every container it creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineProject {
    /// `com.docker.compose.project`.
    pub name: String,
    /// `com.docker.compose.project.working_dir`: the project directory.
    pub working_dir: Option<String>,
    /// `com.docker.compose.project.config_files`: the files it was started from, absolute (files
    /// podman-compose names relative to the working directory are joined to it), in the order
    /// Compose read them.
    pub config_files: Vec<String>,
    /// How many containers carry the project's labels.
    pub containers: usize,
}

/// What one container engine said about its Compose projects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineReport {
    /// Docker or Podman.
    pub engine: Engine,
    /// Where the answer came from: a command (`docker inspect`, `podman ps -a --format json`) or
    /// the engine's state on disk (`/var/lib/docker/containers`).
    pub source: String,
    /// The user whose rootless engine it is (`None`: the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless_user: Option<String>,
    /// The projects, by name.
    pub projects: Vec<EngineProject>,
}
