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

pub mod dotenv;
pub mod interpolate;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Component, Path, PathBuf};

use self::yaml::{Node, Yaml};
use crate::model::compose::{
    AllMarker, CAPTURED_ENV, ComposeService, ComposeStack, DeviceCount, DeviceMapping, DeviceReservation, VolumeKind,
    VolumeMount,
};
use crate::model::text::ParseError;

/// Compose file names, in the order Docker Compose prefers them.
pub const COMPOSE_FILE_NAMES: &[&str] = &["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// The file Compose merges over `main` when it exists (`compose.yaml` -> `compose.override.yaml`).
pub fn override_name(main: &str) -> Option<String> {
    let (stem, ext) = main.rsplit_once('.')?;
    Some(format!("{stem}.override.{ext}"))
}

/// The compose file Docker Compose would pick among `names` (a directory's entries).
pub fn pick_compose_file<S: AsRef<str>>(names: &[S]) -> Option<&'static str> {
    COMPOSE_FILE_NAMES.iter().copied().find(|c| names.iter().any(|n| n.as_ref() == *c))
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

/// Loads a project: `.env`, the compose files and their includes.
pub fn load_project(src: &ProjectSource) -> ComposeStack {
    let dir_name = src.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut stack = ComposeStack {
        name: normalize_project_name(&dir_name),
        dir: src.dir.display().to_string(),
        owner: None,
        files: Vec::new(),
        env_file: None,
        active_profiles: Vec::new(),
        services: Vec::new(),
        unset_variables: Vec::new(),
        problems: Vec::new(),
    };
    let env = load_dotenv(&src.dir, src.outer_env, src.read, &mut stack);
    let lookup = |n: &str| (src.outer_env)(n).or_else(|| env.get(n).cloned());
    let mut files = src.files.clone();
    if let Some(cf) = lookup("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = lookup("COMPOSE_PATH_SEPARATOR").unwrap_or_else(|| ":".into());
        files = cf.split(sep.as_str()).filter(|s| !s.is_empty()).map(|f| clean_join(&src.dir, f)).collect();
    }
    if let Some(p) = lookup("COMPOSE_PROFILES") {
        stack.active_profiles = p.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    }
    let mut loader = Loader { read: src.read, home: src.home.clone(), visited: BTreeSet::new(), stack: &mut stack };
    let mut name = None;
    for f in &files {
        if let Some(n) = loader.load_file(f, &src.dir, &lookup, 0) {
            name = Some(n);
        }
    }
    if let Some(n) = lookup("COMPOSE_PROJECT_NAME").or(name) {
        stack.name = normalize_project_name(&n);
    }
    stack.unset_variables.sort();
    stack.unset_variables.dedup();
    // A base service read for several `extends` reports its problems once.
    let mut seen = BTreeSet::new();
    stack.problems.retain(|p| seen.insert((p.file.clone(), p.line, p.message.clone())));
    stack
}

fn load_dotenv(dir: &Path, outer: LookupFn, read: ReadFn, stack: &mut ComposeStack) -> BTreeMap<String, String> {
    let path = dir.join(".env");
    match read(&path) {
        Ok(text) => {
            stack.env_file = Some(path.display().to_string());
            let parsed = dotenv::parse(&text, &path, outer);
            stack.problems.extend(parsed.errors);
            parsed.entries.into_iter().map(|(_, v)| (v.name, v.value)).collect()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            stack.problems.push(ParseError { file: path, line: 0, message: format!("cannot read: {e}") });
            BTreeMap::new()
        }
    }
}

struct Loader<'a, 's> {
    read: ReadFn<'a>,
    home: Option<PathBuf>,
    visited: BTreeSet<PathBuf>,
    stack: &'s mut ComposeStack,
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

const MAX_INCLUDE_DEPTH: usize = 16;

impl Loader<'_, '_> {
    /// Loads one compose file into the stack; returns its top-level `name:`.
    fn load_file(
        &mut self,
        file: &Path,
        project_dir: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        depth: usize,
    ) -> Option<String> {
        let problem = |stack: &mut ComposeStack, line: usize, message: String| {
            stack.problems.push(ParseError { file: file.to_path_buf(), line, message });
        };
        if !self.visited.insert(file.to_path_buf()) || depth > MAX_INCLUDE_DEPTH {
            problem(self.stack, 0, "included more than once (an include cycle?): skipped".into());
            return None;
        }
        let text = match (self.read)(file) {
            Ok(t) => t,
            Err(e) => {
                problem(self.stack, 0, format!("cannot read: {e}"));
                return None;
            }
        };
        self.stack.files.push(file.display().to_string());
        let root = match yaml::parse(&text) {
            Ok(n) => n,
            Err(e) => {
                problem(self.stack, e.line, format!("not valid YAML (column {}): {}", e.column, e.message));
                return None;
            }
        };
        let root = match root.value {
            Yaml::Map(_) => root,
            Yaml::Null => return None,
            _ => {
                problem(self.stack, root.line, format!("a compose file is a mapping, found {}", root.kind()));
                return None;
            }
        };
        let mut problems = Vec::new();
        let mut unset = Vec::new();
        let root = interpolate_tree(&root, lookup, file, &mut problems, &mut unset);
        self.stack.unset_variables.extend(unset);
        let home = self.home.clone();
        let ctx = Ctx { file, project_dir, home: home.as_deref(), lookup, read: self.read };
        let name = root.get("name").and_then(Node::scalar_text);

        // include: first, as Compose loads included models before the including one.
        if let Some(inc) = root.get("include") {
            self.includes(&ctx, inc, &mut problems, depth);
        }
        let named_volumes = named_volume_paths(&ctx, root.get("volumes"), &mut problems);
        match root.get("services").map(|s| &s.value) {
            None | Some(Yaml::Null) => {}
            Some(Yaml::Map(services)) => {
                for (name, node) in services {
                    let svc = self.extended_service(&ctx, services, name, node, &named_volumes, &mut problems, 0);
                    merge_service(self.stack, svc, file, &mut problems);
                }
            }
            Some(_) => {
                let n = root.get("services").map_or(0, |n| n.line);
                ctx.problem(&mut problems, n, "services: must be a mapping of service names".into());
            }
        }
        self.stack.problems.extend(problems);
        name
    }

    /// A service with its `extends:` applied (`extends: base` or `{service, file}`): the base
    /// service, with relative paths resolved against its own file's directory, merged under
    /// this one as `merge.md` specifies.
    #[allow(clippy::too_many_arguments)]
    fn extended_service(
        &mut self,
        ctx: &Ctx,
        services: &[(String, Node)],
        name: &str,
        node: &Node,
        named_volumes: &BTreeMap<String, String>,
        problems: &mut Vec<ParseError>,
        depth: usize,
    ) -> ComposeService {
        let svc = service(ctx, name, node, named_volumes, problems);
        let Some(ext) = node.get("extends") else { return svc };
        let (base_name, base_file) = match &ext.value {
            Yaml::Map(_) => {
                (ext.get("service").and_then(Node::scalar_text), ext.get("file").and_then(Node::scalar_text))
            }
            _ => (ext.scalar_text(), None),
        };
        let Some(base_name) = base_name else {
            ctx.problem(problems, ext.line, format!("services.{name}.extends: names no service"));
            return svc;
        };
        if depth >= MAX_INCLUDE_DEPTH {
            ctx.problem(problems, ext.line, format!("services.{name}.extends: too deep (a cycle?)"));
            return svc;
        }
        let base = match base_file {
            None => match services.iter().find(|(n, _)| *n == base_name) {
                Some((n, base_node)) => {
                    self.extended_service(ctx, services, n, base_node, named_volumes, problems, depth + 1)
                }
                None => {
                    ctx.problem(problems, ext.line, format!("services.{name}.extends: no service {base_name}"));
                    return svc;
                }
            },
            Some(f) => {
                let dir = ctx.file.parent().unwrap_or(ctx.project_dir);
                let path = clean_join(dir, &f);
                let text = match (ctx.read)(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        ctx.problem(problems, ext.line, format!("services.{name}.extends: {}: {e}", path.display()));
                        return svc;
                    }
                };
                let root = match yaml::parse(&text) {
                    Ok(r) => r,
                    Err(e) => {
                        problems.push(ParseError {
                            file: path,
                            line: e.line,
                            message: format!("not valid YAML (column {}): {}", e.column, e.message),
                        });
                        return svc;
                    }
                };
                let mut unset = Vec::new();
                let root = interpolate_tree(&root, ctx.lookup, &path, problems, &mut unset);
                self.stack.unset_variables.extend(unset);
                if !self.stack.files.contains(&path.display().to_string()) {
                    self.stack.files.push(path.display().to_string());
                }
                let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let base_ctx =
                    Ctx { file: &path, project_dir: &base_dir, home: ctx.home, lookup: ctx.lookup, read: ctx.read };
                let base_named = named_volume_paths(&base_ctx, root.get("volumes"), problems);
                let Some(Yaml::Map(base_services)) = root.get("services").map(|n| &n.value) else {
                    ctx.problem(
                        problems,
                        ext.line,
                        format!("services.{name}.extends: {} has no services", path.display()),
                    );
                    return svc;
                };
                match base_services.iter().find(|(n, _)| *n == base_name) {
                    Some((n, base_node)) => {
                        self.extended_service(&base_ctx, base_services, n, base_node, &base_named, problems, depth + 1)
                    }
                    None => {
                        ctx.problem(
                            problems,
                            ext.line,
                            format!("services.{name}.extends: no service {base_name} in {}", path.display()),
                        );
                        return svc;
                    }
                }
            }
        };
        let mut merged = base;
        merge_into(&mut merged, svc.clone());
        merged.name = svc.name;
        merged.file = svc.file;
        merged.line = svc.line;
        merged
    }

    fn includes(&mut self, ctx: &Ctx, inc: &Node, problems: &mut Vec<ParseError>, depth: usize) {
        let Yaml::Seq(items) = &inc.value else {
            ctx.problem(problems, inc.line, format!("include: must be a list, found {}", inc.kind()));
            return;
        };
        for item in items {
            let (paths, project_directory, env_files) = match &item.value {
                Yaml::Str(s) => (vec![s.clone()], None, Vec::new()),
                Yaml::Map(_) => {
                    let paths = match item.get("path") {
                        Some(p) => string_list(ctx, p, "include.path", problems),
                        None => {
                            ctx.problem(problems, item.line, "include: an entry needs a path".into());
                            continue;
                        }
                    };
                    let pd = item.get("project_directory").and_then(Node::scalar_text);
                    let ef = item.get("env_file").map(|e| string_list(ctx, e, "include.env_file", problems));
                    (paths, pd, ef.unwrap_or_default())
                }
                _ => {
                    ctx.problem(
                        problems,
                        item.line,
                        format!("include: an entry is a path or a mapping, found {}", item.kind()),
                    );
                    continue;
                }
            };
            let Some(first) = paths.first() else { continue };
            let first_path = clean_join(ctx.project_dir, first);
            let inc_dir = match &project_directory {
                Some(pd) => clean_join(ctx.project_dir, pd),
                None => first_path.parent().map(Path::to_path_buf).unwrap_or_else(|| ctx.project_dir.to_path_buf()),
            };
            // The included model is interpolated with its own env files (default: the .env of
            // its project directory); the including project's variables win.
            let env_paths: Vec<PathBuf> = if env_files.is_empty() {
                vec![inc_dir.join(".env")]
            } else {
                env_files.iter().map(|e| clean_join(ctx.project_dir, e)).collect()
            };
            let mut inc_env = BTreeMap::new();
            for ep in env_paths {
                match (self.read)(&ep) {
                    Ok(text) => {
                        let parsed = dotenv::parse(&text, &ep, ctx.lookup);
                        problems.extend(parsed.errors);
                        inc_env.extend(parsed.entries.into_iter().map(|(_, v)| (v.name, v.value)));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound && env_files.is_empty() => {}
                    Err(e) => problems.push(ParseError { file: ep, line: 0, message: format!("cannot read: {e}") }),
                }
            }
            let parent = ctx.lookup;
            let lookup = move |n: &str| parent(n).or_else(|| inc_env.get(n).cloned());
            for p in &paths {
                let path = clean_join(ctx.project_dir, p);
                self.load_file(&path, &inc_dir, &lookup, depth + 1);
            }
        }
    }
}

/// Adds `svc` to the stack, merging it over an earlier definition from an override file as
/// `merge.md` specifies for the fields kept; a service that an included file already defines
/// is a conflict.
fn merge_service(stack: &mut ComposeStack, svc: ComposeService, file: &Path, problems: &mut Vec<ParseError>) {
    let Some(old) = stack.services.iter_mut().find(|s| s.name == svc.name) else {
        stack.services.push(svc);
        return;
    };
    let same_dir = Path::new(&old.file).parent() == file.parent();
    if !same_dir {
        problems.push(ParseError {
            file: file.to_path_buf(),
            line: svc.line,
            message: format!("service {} is also defined in {}: Compose refuses this conflict", svc.name, old.file),
        });
        return;
    }
    merge_into(old, svc);
}

/// Merges `svc` over `old` for the fields kept, as `merge.md` specifies: scalars replace,
/// `environment` merges by name, `group_add` and `profiles` append, devices and volumes merge by
/// target, reservations replace.
fn merge_into(old: &mut ComposeService, svc: ComposeService) {
    if svc.image.is_some() {
        old.image = svc.image;
    }
    if svc.user.is_some() {
        old.user = svc.user;
    }
    if svc.runtime.is_some() {
        old.runtime = svc.runtime;
    }
    old.environment.extend(svc.environment);
    for g in svc.group_add {
        if !old.group_add.contains(&g) {
            old.group_add.push(g);
        }
    }
    for p in svc.profiles {
        if !old.profiles.contains(&p) {
            old.profiles.push(p);
        }
    }
    // Devices and volumes merge by their target, an override taking the place of the entry
    // it replaces.
    for d in svc.devices {
        match old.devices.iter_mut().find(|o| o.target == d.target) {
            Some(o) => *o = d,
            None => old.devices.push(d),
        }
    }
    for v in svc.volumes {
        match old.volumes.iter_mut().find(|o| o.target == v.target) {
            Some(o) => *o = v,
            None => old.volumes.push(v),
        }
    }
    if !svc.device_reservations.is_empty() {
        old.device_reservations = svc.device_reservations;
    }
    if !svc.gpus.is_empty() {
        old.gpus = svc.gpus;
    }
}

/// Interpolates every scalar string of the tree (keys are left alone, as Compose does).
fn interpolate_tree(
    node: &Node,
    lookup: &dyn Fn(&str) -> Option<String>,
    file: &Path,
    problems: &mut Vec<ParseError>,
    unset: &mut Vec<String>,
) -> Node {
    let value = match &node.value {
        Yaml::Str(s) if s.contains('$') => match interpolate::interpolate(s, lookup) {
            Ok(i) => {
                unset.extend(i.unset);
                Yaml::Str(i.value)
            }
            Err(e) => {
                problems.push(ParseError { file: file.to_path_buf(), line: node.line, message: e.to_string() });
                Yaml::Str(s.clone())
            }
        },
        Yaml::Seq(items) => {
            Yaml::Seq(items.iter().map(|n| interpolate_tree(n, lookup, file, problems, unset)).collect())
        }
        Yaml::Map(entries) => Yaml::Map(
            entries.iter().map(|(k, n)| (k.clone(), interpolate_tree(n, lookup, file, problems, unset))).collect(),
        ),
        other => other.clone(),
    };
    Node { value, line: node.line }
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

/// A host path as Compose resolves a bind source: `~` -> home, relative -> project directory.
fn host_path(ctx: &Ctx, src: &str) -> String {
    let p = if src == "~" {
        ctx.home.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("~"))
    } else if let Some(rest) = src.strip_prefix("~/") {
        match ctx.home {
            Some(h) => clean_join(h, rest),
            None => PathBuf::from(src),
        }
    } else {
        clean_join(ctx.project_dir, src)
    };
    p.display().to_string()
}

fn string_list(ctx: &Ctx, node: &Node, what: &str, problems: &mut Vec<ParseError>) -> Vec<String> {
    match &node.value {
        Yaml::Null => Vec::new(),
        Yaml::Seq(items) => items
            .iter()
            .filter_map(|i| {
                let t = i.scalar_text();
                if t.is_none() {
                    ctx.problem(problems, i.line, format!("{what}: expected a string, found {}", i.kind()));
                }
                t
            })
            .collect(),
        _ => match node.scalar_text() {
            Some(t) => vec![t],
            None => {
                ctx.problem(problems, node.line, format!("{what}: expected a string or a list, found {}", node.kind()));
                Vec::new()
            }
        },
    }
}

/// Top-level `volumes:` declared with the local driver's bind options: name -> host directory.
fn named_volume_paths(ctx: &Ctx, node: Option<&Node>, problems: &mut Vec<ParseError>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(node) = node else { return out };
    let entries = match &node.value {
        Yaml::Map(e) => e,
        Yaml::Null => return out,
        _ => {
            ctx.problem(problems, node.line, format!("volumes: must be a mapping, found {}", node.kind()));
            return out;
        }
    };
    for (name, v) in entries {
        let Some(opts) = v.get("driver_opts") else { continue };
        let o = opts.get("o").and_then(Node::scalar_text).unwrap_or_default();
        let device = opts.get("device").and_then(Node::scalar_text);
        let driver = v.get("driver").and_then(Node::scalar_text).unwrap_or_else(|| "local".into());
        if driver == "local" && o.split(',').any(|x| x.trim() == "bind") {
            if let Some(d) = device {
                out.insert(name.clone(), host_path(ctx, &d));
            }
        }
    }
    out
}

fn service(
    ctx: &Ctx,
    name: &str,
    node: &Node,
    named_volumes: &BTreeMap<String, String>,
    problems: &mut Vec<ParseError>,
) -> ComposeService {
    let mut svc = ComposeService {
        name: name.to_owned(),
        file: ctx.file.display().to_string(),
        line: node.line,
        image: None,
        profiles: Vec::new(),
        environment: BTreeMap::new(),
        user: None,
        group_add: Vec::new(),
        devices: Vec::new(),
        runtime: None,
        device_reservations: Vec::new(),
        gpus: Vec::new(),
        volumes: Vec::new(),
    };
    match &node.value {
        Yaml::Map(_) => {}
        Yaml::Null => return svc,
        _ => {
            ctx.problem(problems, node.line, format!("services.{name}: must be a mapping, found {}", node.kind()));
            return svc;
        }
    }
    let scalar = |key: &str, problems: &mut Vec<ParseError>| -> Option<String> {
        let n = node.get(key)?;
        if matches!(n.value, Yaml::Null) {
            return None;
        }
        let t = n.scalar_text();
        if t.is_none() {
            ctx.problem(problems, n.line, format!("services.{name}.{key}: expected a string, found {}", n.kind()));
        }
        t
    };
    svc.image = scalar("image", problems);
    svc.user = scalar("user", problems);
    svc.runtime = scalar("runtime", problems);
    if let Some(p) = node.get("profiles") {
        svc.profiles = string_list(ctx, p, &format!("services.{name}.profiles"), problems);
    }
    if let Some(g) = node.get("group_add") {
        svc.group_add = string_list(ctx, g, &format!("services.{name}.group_add"), problems);
    }
    svc.environment = environment(ctx, name, node, problems);
    if let Some(d) = node.get("devices") {
        svc.devices = devices(ctx, name, d, problems);
    }
    if let Some(r) = node.get("deploy").and_then(|d| d.get("resources")).and_then(|r| r.get("reservations")) {
        if let Some(d) = r.get("devices") {
            svc.device_reservations =
                reservations(ctx, &format!("services.{name}.deploy.resources.reservations.devices"), d, problems);
        }
    }
    if let Some(g) = node.get("gpus") {
        svc.gpus = match &g.value {
            Yaml::Str(s) if s == "all" => {
                vec![DeviceReservation { count: Some(DeviceCount::All(AllMarker::All)), ..Default::default() }]
            }
            _ => reservations(ctx, &format!("services.{name}.gpus"), g, problems),
        };
    }
    if let Some(v) = node.get("volumes") {
        svc.volumes = volumes(ctx, name, v, named_volumes, problems);
    }
    svc
}

/// `environment:` over `env_file:`, reduced to [`CAPTURED_ENV`].
fn environment(ctx: &Ctx, name: &str, node: &Node, problems: &mut Vec<ParseError>) -> BTreeMap<String, Option<String>> {
    let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(ef) = node.get("env_file") {
        let entries: Vec<(String, bool)> = match &ef.value {
            Yaml::Seq(items) => items
                .iter()
                .filter_map(|i| match &i.value {
                    Yaml::Map(_) => {
                        let path = i.get("path").and_then(Node::scalar_text)?;
                        let required = !matches!(i.get("required").map(|r| &r.value), Some(Yaml::Bool(false)));
                        Some((path, required))
                    }
                    _ => i.scalar_text().map(|p| (p, true)),
                })
                .collect(),
            _ => ef.scalar_text().map(|p| vec![(p, true)]).unwrap_or_default(),
        };
        for (path, required) in entries {
            let p = clean_join(ctx.project_dir, &path);
            match (ctx.read)(&p) {
                Ok(text) => {
                    let parsed = dotenv::parse(&text, &p, ctx.lookup);
                    problems.extend(parsed.errors);
                    for (_, v) in parsed.entries {
                        env.insert(v.name, Some(v.value));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {}
                Err(e) => ctx.problem(problems, ef.line, format!("services.{name}.env_file: {}: {e}", p.display())),
            }
        }
    }
    if let Some(e) = node.get("environment") {
        match &e.value {
            Yaml::Map(entries) => {
                for (k, v) in entries {
                    let value = match &v.value {
                        Yaml::Null => (ctx.lookup)(k),
                        _ => v.scalar_text(),
                    };
                    env.insert(k.clone(), value);
                }
            }
            Yaml::Seq(items) => {
                for i in items {
                    let Some(t) = i.scalar_text() else {
                        ctx.problem(
                            problems,
                            i.line,
                            format!("services.{name}.environment: expected NAME=value, found {}", i.kind()),
                        );
                        continue;
                    };
                    match t.split_once('=') {
                        Some((k, v)) => env.insert(k.to_owned(), Some(v.to_owned())),
                        None => env.insert(t.clone(), (ctx.lookup)(&t)),
                    };
                }
            }
            Yaml::Null => {}
            _ => ctx.problem(
                problems,
                e.line,
                format!("services.{name}.environment: expected a mapping or a list, found {}", e.kind()),
            ),
        }
    }
    env.retain(|k, _| CAPTURED_ENV.contains(&k.as_str()));
    env
}

fn devices(ctx: &Ctx, name: &str, node: &Node, problems: &mut Vec<ParseError>) -> Vec<DeviceMapping> {
    let Yaml::Seq(items) = &node.value else {
        if !matches!(node.value, Yaml::Null) {
            ctx.problem(
                problems,
                node.line,
                format!("services.{name}.devices: expected a list, found {}", node.kind()),
            );
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        match &i.value {
            Yaml::Map(_) => {
                let get = |k: &str| i.get(k).and_then(Node::scalar_text);
                match get("source") {
                    Some(source) => out.push(DeviceMapping {
                        target: get("target").unwrap_or_else(|| source.clone()),
                        permissions: get("permissions").unwrap_or_else(|| "rwm".into()),
                        source,
                    }),
                    None => ctx.problem(problems, i.line, format!("services.{name}.devices: an entry needs a source")),
                }
            }
            _ => match i.scalar_text() {
                Some(s) => out.push(parse_device(&s)),
                None => ctx.problem(
                    problems,
                    i.line,
                    format!("services.{name}.devices: expected a string or a mapping, found {}", i.kind()),
                ),
            },
        }
    }
    out
}

/// `src`, `src:dst`, `src:perms`, `src:dst:perms`; CDI names (`nvidia.com/gpu=all`) stay whole.
fn parse_device(s: &str) -> DeviceMapping {
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, permissions) = match parts.as_slice() {
        [src, dst, perms] => (*src, *dst, *perms),
        [src, p] if is_perms(p) => (*src, *src, *p),
        [src, dst] => (*src, *dst, "rwm"),
        _ => (s, s, "rwm"),
    };
    DeviceMapping { source: source.to_owned(), target: target.to_owned(), permissions: permissions.to_owned() }
}

fn reservations(ctx: &Ctx, what: &str, node: &Node, problems: &mut Vec<ParseError>) -> Vec<DeviceReservation> {
    let Yaml::Seq(items) = &node.value else {
        ctx.problem(problems, node.line, format!("{what}: expected a list, found {}", node.kind()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        if !matches!(i.value, Yaml::Map(_)) {
            ctx.problem(problems, i.line, format!("{what}: expected a mapping, found {}", i.kind()));
            continue;
        }
        let count = i.get("count").and_then(|c| match &c.value {
            Yaml::Int(n) if *n < 0 => Some(DeviceCount::All(AllMarker::All)),
            Yaml::Int(n) => Some(DeviceCount::Count(*n as u64)),
            Yaml::Str(s) if s == "all" => Some(DeviceCount::All(AllMarker::All)),
            Yaml::Str(s) => match s.parse::<u64>() {
                Ok(n) => Some(DeviceCount::Count(n)),
                Err(_) => {
                    ctx.problem(problems, c.line, format!("{what}: count {s:?} is neither a number nor \"all\""));
                    None
                }
            },
            _ => None,
        });
        let list = |k: &str, problems: &mut Vec<ParseError>| {
            i.get(k).map(|n| string_list(ctx, n, &format!("{what}.{k}"), problems)).unwrap_or_default()
        };
        out.push(DeviceReservation {
            driver: i.get("driver").and_then(Node::scalar_text),
            count,
            device_ids: list("device_ids", problems),
            capabilities: list("capabilities", problems),
        });
    }
    out
}

fn is_bind_source(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

fn volumes(
    ctx: &Ctx,
    name: &str,
    node: &Node,
    named: &BTreeMap<String, String>,
    problems: &mut Vec<ParseError>,
) -> Vec<VolumeMount> {
    let Yaml::Seq(items) = &node.value else {
        if !matches!(node.value, Yaml::Null) {
            ctx.problem(
                problems,
                node.line,
                format!("services.{name}.volumes: expected a list, found {}", node.kind()),
            );
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        let m = match &i.value {
            Yaml::Map(_) => {
                let get = |k: &str| i.get(k).and_then(Node::scalar_text);
                let Some(target) = get("target") else {
                    ctx.problem(problems, i.line, format!("services.{name}.volumes: an entry needs a target"));
                    continue;
                };
                let kind = match get("type").as_deref() {
                    Some("bind") => VolumeKind::Bind,
                    Some("volume") | None => VolumeKind::Volume,
                    Some("tmpfs") => VolumeKind::Tmpfs,
                    Some(_) => VolumeKind::Other,
                };
                let read_only = matches!(i.get("read_only").map(|n| &n.value), Some(Yaml::Bool(true)))
                    || get("read_only").as_deref() == Some("true");
                let source = get("source");
                mount(ctx, kind, source, target, read_only, named)
            }
            _ => match i.scalar_text() {
                Some(s) => short_volume(ctx, &s, named),
                None => {
                    ctx.problem(
                        problems,
                        i.line,
                        format!("services.{name}.volumes: expected a string or a mapping, found {}", i.kind()),
                    );
                    continue;
                }
            },
        };
        out.push(m);
    }
    out
}

fn mount(
    ctx: &Ctx,
    kind: VolumeKind,
    source: Option<String>,
    target: String,
    read_only: bool,
    named: &BTreeMap<String, String>,
) -> VolumeMount {
    let (source, host_path) = match kind {
        VolumeKind::Bind => {
            let p = source.map(|s| host_path(ctx, &s));
            (p.clone(), p)
        }
        VolumeKind::Volume => {
            let hp = source.as_ref().and_then(|s| named.get(s).cloned());
            (source, hp)
        }
        _ => (source, None),
    };
    VolumeMount { kind, source, target, read_only, host_path }
}

/// `[SOURCE:]TARGET[:MODE]`, as `spec.md` "Short syntax" defines it.
fn short_volume(ctx: &Ctx, s: &str, named: &BTreeMap<String, String>) -> VolumeMount {
    let parts: Vec<&str> = s.splitn(3, ':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [src, t] => (Some(*src), *t, ""),
        [src, t, m] => (Some(*src), *t, *m),
        _ => (None, s, ""),
    };
    let read_only = mode.split(',').any(|m| m == "ro");
    let kind = match source {
        Some(src) if is_bind_source(src) => VolumeKind::Bind,
        _ => VolumeKind::Volume,
    };
    mount(ctx, kind, source.map(str::to_owned), target.to_owned(), read_only, named)
}

#[cfg(test)]
mod tests;
