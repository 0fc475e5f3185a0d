//! Docker Compose projects, as the Compose Specification (compose-spec.io, `spec.md`,
//! `interpolation.md`, `merge.md`, `include.md`, `profiles.md`) and Docker Compose v2 read them,
//! reduced to what a host move needs: per service the image, the credentials the container
//! runs with (`PUID`/`PGID`, `user:`, `group_add:`), devices, GPU needs and host paths.
//!
//! What is handled:
//! - file names `compose.yaml`, `compose.yml`, `docker-compose.yaml`, `docker-compose.yml` (in
//!   Compose's order of preference), each with its `*.override.*` file merged over it;
//!   `COMPOSE_FILE`, `COMPOSE_PROFILES` and `COMPOSE_PROJECT_NAME` from `.env`;
//! - YAML anchors, aliases and `<<:` merge keys; `x-` extension fields (ignored, usable as
//!   anchors);
//! - interpolation of every value (not keys) from the project's `.env` ([`interpolate`],
//!   [`dotenv`]);
//! - `environment:` as a mapping or a list (`- PUID=1000`, `- PUID` resolved from `.env`),
//!   `env_file:` (string, list, or `{path, required}`), `environment:` winning over it;
//! - `devices:` short (`/dev/dri`, `/dev/dri:/dev/dri`, `src:dst:rwm`, CDI `nvidia.com/gpu=all`)
//!   and long (`{source, target, permissions}`) forms;
//! - GPU needs: `runtime: nvidia`, `deploy.resources.reservations.devices`, `gpus:`;
//! - `volumes:` short (`./config:/config`, `~/media:/media:ro`, `name:/data`, `/anon`) and long
//!   forms; relative paths resolve against the project directory of the file that names them,
//!   `~` against the stack owner's home; named volumes are not host paths unless declared with
//!   the local driver's bind options (`driver_opts: {type: none, o: bind, device: ...}`);
//! - `include:` (string or `{path, project_directory, env_file}`), each included file with its
//!   own project directory, as `include.md` specifies; cycles are reported;
//! - `profiles:`;
//! - `extends:` (`extends: base` or `{service, file}`), the base's relative paths resolved
//!   against its own file's directory.
//!
//! Which environment interpolation sees: Compose gives the shell environment precedence over
//! `.env`. Capture runs on the old host, usually as root, in a shell that is not the one the
//! stacks were started from, so its environment says nothing about them: capture passes no
//! outer environment and the stack's `.env` is what counts (a variable set only in the owner's
//! shell shows up in [`ComposeStack::unset_variables`]). Embedders may pass one.
//!
//! Leniency: a file that is not YAML is reported with its line and column; a field of the wrong
//! shape or a bad interpolation is reported with file and line, and everything else is still
//! captured.
//!
//! This file finds a project (its compose files, the file reader, project names) and holds what
//! both halves share; `loader.rs` reads a project (`.env`, `include:`, `extends:`, override
//! merges, interpolation) and `service.rs` reads one service's fields.
//!
//! [`ComposeStack::unset_variables`]: crate::model::compose::ComposeStack::unset_variables

pub mod dotenv;
pub mod interpolate;
mod loader;
mod service;
pub mod yaml;

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::model::text::ParseError;

pub use loader::load_project;

/// Compose file names, in the order Docker Compose prefers them.
pub const COMPOSE_FILE_NAMES: &[&str] = &["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// Names only podman-compose reads (its `COMPOSE_DEFAULT_LS`, 1.0.3): a directory with one of
/// these and none of [`COMPOSE_FILE_NAMES`] is a podman-compose project.
pub const PODMAN_COMPOSE_FILE_NAMES: &[&str] =
    &["podman-compose.yaml", "podman-compose.yml", "container-compose.yml", "container-compose.yaml"];

/// The file Compose merges over `main` when it exists (`compose.yaml` -> `compose.override.yaml`).
pub fn override_name(main: &str) -> Option<String> {
    let (stem, ext) = main.rsplit_once('.')?;
    Some(format!("{stem}.override.{ext}"))
}

/// The compose file Docker Compose would pick among `names` (a directory's entries), else the
/// one podman-compose would.
pub fn pick_compose_file<S: AsRef<str>>(names: &[S]) -> Option<&'static str> {
    COMPOSE_FILE_NAMES.iter().chain(PODMAN_COMPOSE_FILE_NAMES).copied().find(|c| names.iter().any(|n| n.as_ref() == *c))
}

/// The files `docker compose` reads in directory `dir` whose entries are `names`: the preferred
/// compose file and, when present, its override file. `None` when there is no compose file.
pub fn project_files<S: AsRef<str>>(dir: &Path, names: &[S]) -> Option<Vec<PathBuf>> {
    let main = pick_compose_file(names)?;
    let mut files = vec![dir.join(main)];
    if let Some(o) = override_name(main).filter(|o| names.iter().any(|n| n.as_ref() == o)) {
        files.push(dir.join(o));
    }
    Some(files)
}

/// Reads a file of the host; `NotFound` must be reported as [`io::ErrorKind::NotFound`].
pub type ReadFn<'a> = &'a dyn Fn(&Path) -> io::Result<String>;
/// Looks a variable up in an outer environment.
pub type LookupFn<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Where a project is and how to read it.
pub struct ProjectSource<'a> {
    /// The project directory (absolute host path).
    pub dir: PathBuf,
    /// The compose files, main first (absolute host paths). Replaced by `COMPOSE_FILE` when
    /// `.env` sets it.
    pub files: Vec<PathBuf>,
    /// The env files interpolation reads, in order (`docker compose --env-file`); `None`: the
    /// project directory's `.env`, when it exists.
    pub env_files: Option<Vec<PathBuf>>,
    /// Home directory `~` stands for (the stack owner's).
    pub home: Option<PathBuf>,
    /// The outer environment (see the [module documentation](self) for why capture passes none).
    pub outer_env: LookupFn<'a>,
    /// Reads a host file.
    pub read: ReadFn<'a>,
}

/// No outer environment.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// Compose's normalisation of a project name: lower case, only `[a-z0-9_-]`, starting with a
/// letter or digit.
pub fn normalize_project_name(name: &str) -> String {
    let s: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    s.trim_start_matches(['_', '-']).to_owned()
}

/// One file's context while interpreting it.
struct Ctx<'c> {
    file: &'c Path,
    project_dir: &'c Path,
    home: Option<&'c Path>,
    lookup: &'c dyn Fn(&str) -> Option<String>,
    read: ReadFn<'c>,
}

impl Ctx<'_> {
    fn problem(&self, problems: &mut Vec<ParseError>, line: usize, message: String) {
        problems.push(ParseError { file: self.file.to_path_buf(), line, message });
    }
}

/// `a/b/../c` -> `a/c`; `.` components dropped; `..` never climbs above `/`.
pub fn clean_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    out.push("/");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `base` joined with `rel` (absolute `rel` wins), cleaned.
fn clean_join(base: &Path, rel: &str) -> PathBuf {
    clean_path(&base.join(rel))
}

#[cfg(test)]
mod tests;
