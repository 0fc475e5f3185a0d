//! Loading a project as Docker Compose v2 does: `.env`, the compose files in order, `include:`
//! and `extends:` (each with its own directory), override files merged as `merge.md` specifies,
//! and interpolation of every value. Apart from discovery and from the per-field parsing, so the
//! order of loading and merging reads in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::service::{named_volume_paths, service, string_list};
use super::yaml::{self, Node, Yaml};
use super::{Ctx, LookupFn, ProjectSource, ReadFn, clean_join, dotenv, interpolate, normalize_project_name};
use crate::model::compose::{ComposeService, ComposeStack};
use crate::model::text::ParseError;

/// Loads a project: `.env`, the compose files and their includes.
pub fn load_project(src: &ProjectSource) -> ComposeStack {
    let dir_name = src.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut stack = ComposeStack::new(normalize_project_name(&dir_name), src.dir.display().to_string());
    let env = match &src.env_files {
        None => load_dotenv(&src.dir.join(".env"), false, src.outer_env, src.read, &mut stack),
        Some(files) => {
            let mut env = BTreeMap::new();
            for f in files {
                env.extend(load_dotenv(f, true, src.outer_env, src.read, &mut stack));
            }
            env
        }
    };
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

/// Reads one env file for interpolation; a missing `.env` is no problem, a missing file given
/// with `--env-file` is (`required`).
fn load_dotenv(
    path: &Path,
    required: bool,
    outer: LookupFn,
    read: ReadFn,
    stack: &mut ComposeStack,
) -> BTreeMap<String, String> {
    match read(path) {
        Ok(text) => {
            stack.env_file = Some(path.display().to_string());
            let parsed = dotenv::parse(&text, path, outer);
            stack.problems.extend(parsed.errors);
            parsed.entries.into_iter().map(|(_, v)| (v.name, v.value)).collect()
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => BTreeMap::new(),
        Err(e) => {
            stack.problems.push(ParseError { file: path.to_path_buf(), line: 0, message: format!("cannot read: {e}") });
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
    if svc.userns.is_some() {
        old.userns = svc.userns;
    }
    // group_add appends and annotations merge by key: what kept the groups still does.
    old.keep_groups |= svc.keep_groups;
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
