//! Where the containers are, and never a stack missed silently.
//!
//! Three ways to a Compose stack, in this order:
//! 1. `--compose-file FILE` (with `--env-file`): files named by the person, as `docker compose
//!    -f` takes them; the project directory is the first file's.
//! 2. The searched directories (`--compose-dir`, else `~/docker` and `~/Projects` of every
//!    human user and of root): a directory that is itself a stack (a compose file by one of
//!    Compose's names, a podman-compose name, or `COMPOSE_FILE` in its `.env`) is one stack and
//!    is not descended into (its subdirectories are usually its `include:`s); otherwise each
//!    subdirectory that is a stack.
//! 3. The container engines (`host::engine`): every Compose project whose containers carry
//!    Compose's labels, with the files it was really started from. A stack found in 2 from other
//!    files than the engine names (`-f docker-compose.yml -f hwaccel.yml`) is read from the
//!    engine's files, since those are what runs.
//!
//! 4. Podman quadlet `.container` units (`sources::quadlet`): `/etc/containers/systemd` and
//!    `/usr/share/containers/systemd` (rootful), each human user's `~/.config/containers/systemd`
//!    (rootless), one stack of kind quadlet per directory.
//!
//! What is left: a YAML file with a top-level `services:` in a searched directory (or one level
//! below) that no stack read is named in the snapshot's gaps ("looks like a compose file"), so a
//! stack kept under another name is never lost without a word.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use super::{HomeOwner, io_error, owner_of};
use crate::host::Host;
use crate::host::engine::{self, EngineUser};
use crate::model::compose::{ComposeStack, Engine, EngineProject, EngineReport, FoundBy};
use crate::model::snapshot::{ComposeCapture, Gap, SearchDir};
use crate::sources::compose::{self, ProjectSource, dotenv, yaml};
use crate::sources::quadlet::{self, QuadletSource, UnitUser};

/// Compose files named by the person, one project (`capture --compose-file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeFiles {
    /// The compose files, main first (host paths).
    pub files: Vec<PathBuf>,
    /// `--env-file`s for interpolation, in order (empty: the project directory's `.env`).
    pub env_files: Vec<PathBuf>,
}

/// YAML files larger than this are not looked into for `services:` (no compose file is).
const MAX_YAML_PROBE: u64 = 1 << 20;

pub(super) struct Finder<'a> {
    pub host: &'a Host,
    pub owners: &'a [HomeOwner],
    pub out: ComposeCapture,
    pub gaps: Vec<Gap>,
}

fn gap(reason: String) -> Gap {
    Gap { section: "compose".into(), reason }
}

impl Finder<'_> {
    fn home_of(&self, owner: Option<&String>) -> Option<PathBuf> {
        owner.and_then(|o| self.owners.iter().find(|u| &u.name == o)).map(|u| PathBuf::from(&u.home))
    }

    fn load(&self, dir: &Path, files: Vec<PathBuf>, env_files: Option<Vec<PathBuf>>) -> ComposeStack {
        let read = |p: &Path| self.host.read_to_string(p).map_err(io_error);
        let owner = owner_of(self.host, self.owners, dir);
        let mut stack = compose::load_project(&ProjectSource {
            dir: dir.to_path_buf(),
            files,
            env_files,
            home: self.home_of(owner.as_ref()),
            outer_env: &compose::no_env,
            read: &read,
        });
        stack.owner = owner;
        stack
    }

    fn has_stack_in(&self, dir: &Path) -> bool {
        self.out.stacks.iter().any(|s| Path::new(&s.dir) == dir)
    }

    /// 1: `--compose-file`.
    pub fn named_files(&mut self, specs: &[ComposeFiles]) {
        for spec in specs {
            let Some(first) = spec.files.first() else { continue };
            let dir = first.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
            let env = (!spec.env_files.is_empty()).then(|| spec.env_files.clone());
            let mut stack = self.load(&dir, spec.files.clone(), env);
            stack.found_by = FoundBy::ComposeFileOption;
            stack.command_files = spec.files.iter().map(|f| f.display().to_string()).collect();
            self.out.stacks.push(stack);
        }
    }

    /// Whether `dir` (whose entries are `names`) is a stack, and its files (empty: `.env`'s
    /// `COMPOSE_FILE` names them).
    fn stack_files(&self, dir: &Path, names: &[String]) -> Option<Vec<PathBuf>> {
        if let Some(files) = compose::project_files(dir, names) {
            return Some(files);
        }
        let env = dir.join(".env");
        let text = self.host.read_to_string(&env).ok()?;
        let parsed = dotenv::parse(&text, &env, &compose::no_env);
        parsed.entries.iter().any(|(_, v)| v.name == "COMPOSE_FILE" && !v.value.is_empty()).then(Vec::new)
    }

    fn names(&self, dir: &Path) -> Option<Vec<String>> {
        let entries = self.host.read_dir(dir).ok()?;
        let mut names: Vec<String> = entries.iter().map(|n| n.to_string_lossy().into_owned()).collect();
        names.sort();
        Some(names)
    }

    /// 2: the searched directories.
    pub fn search(&mut self, dirs: &[PathBuf]) {
        for dir in dirs {
            let owner = owner_of(self.host, self.owners, dir);
            let names = match self.host.read_dir(dir) {
                Ok(e) => {
                    let mut n: Vec<String> = e.iter().map(|n| n.to_string_lossy().into_owned()).collect();
                    n.sort();
                    n
                }
                Err(e) => {
                    if e.io_kind() != Some(io::ErrorKind::NotFound) {
                        self.gaps.push(gap(e.to_string()));
                    }
                    self.out.search_dirs.push(SearchDir { path: dir.display().to_string(), owner, exists: false });
                    continue;
                }
            };
            self.out.search_dirs.push(SearchDir { path: dir.display().to_string(), owner, exists: true });
            let mut candidates = Vec::new();
            if let Some(files) = self.stack_files(dir, &names) {
                // The directory is a stack: its subdirectories are its own (includes, configs).
                candidates.push((dir.clone(), files));
            } else {
                for n in names.iter().filter(|n| !n.starts_with('.')) {
                    let sub = dir.join(n);
                    let Some(sub_names) = self.names(&sub) else { continue };
                    if let Some(files) = self.stack_files(&sub, &sub_names) {
                        candidates.push((sub, files));
                    }
                }
            }
            for (stack_dir, files) in candidates {
                if !self.has_stack_in(&stack_dir) {
                    let mut stack = self.load(&stack_dir, files, None);
                    // Only podman-compose reads these names: Docker Compose would not start it.
                    let first = stack.files.first().and_then(|f| Path::new(f).file_name()).map(|n| n.to_string_lossy());
                    if first.is_some_and(|n| compose::PODMAN_COMPOSE_FILE_NAMES.contains(&n.as_ref())) {
                        stack.engine = Some(Engine::Podman);
                    }
                    self.out.stacks.push(stack);
                }
            }
        }
    }

    /// 3: the engines' projects.
    pub fn engines(&mut self, reports: Vec<EngineReport>) {
        for report in &reports {
            for p in &report.projects {
                self.engine_project(report, p);
            }
        }
        self.out.engines = reports;
    }

    fn engine_project(&mut self, report: &EngineReport, p: &EngineProject) {
        let files: Vec<PathBuf> = p.config_files.iter().map(PathBuf::from).collect();
        let Some(dir) = p
            .working_dir
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| files.first().and_then(|f| f.parent()).map(Path::to_path_buf))
        else {
            return;
        };
        let same_files = |s: &ComposeStack| {
            let read: BTreeSet<&str> = s.files.iter().map(String::as_str).collect();
            p.config_files.iter().all(|f| read.contains(f.as_str()))
        };
        let idx = self.out.stacks.iter().position(|s| Path::new(&s.dir) == dir);
        let mark = |s: &mut ComposeStack| {
            s.engine = Some(report.engine);
            if let Some(u) = &report.rootless_user {
                s.rootless = true;
                s.owner = Some(u.clone());
            }
        };
        match idx {
            Some(i) if same_files(&self.out.stacks[i]) || self.out.stacks[i].found_by == FoundBy::ComposeFileOption => {
                mark(&mut self.out.stacks[i]);
            }
            _ if files.is_empty() => {}
            other => {
                // Not found, or found from other files than the engine started it from.
                let mut stack = self.load(&dir, files, None);
                stack.name = p.name.clone();
                stack.found_by = FoundBy::EngineLabels;
                stack.command_files = p.config_files.clone();
                mark(&mut stack);
                match other {
                    Some(i) => self.out.stacks[i] = stack,
                    None => self.out.stacks.push(stack),
                }
            }
        }
    }

    /// 4: quadlet: the system's unit directories (rootful Podman) and each human user's
    /// `~/.config/containers/systemd` (rootless), a stack each.
    pub fn quadlet_dirs(&mut self) {
        let root = UnitUser { name: "root".into(), uid: 0, home: "/root".into() };
        let mut dirs: Vec<(PathBuf, UnitUser, bool)> =
            quadlet::SYSTEM_DIRS.iter().map(|d| (PathBuf::from(d), root.clone(), false)).collect();
        for u in self.owners.iter().filter(|u| u.uid != 0 && u.home.len() > 1) {
            let user = UnitUser { name: u.name.clone(), uid: u.uid, home: u.home.clone() };
            dirs.push((Path::new(&u.home).join(quadlet::USER_DIR), user, true));
        }
        let read = |p: &Path| self.host.read_to_string(p).map_err(io_error);
        let list = |p: &Path| self.names(p);
        let mut found = Vec::new();
        for (dir, user, rootless) in dirs {
            let Some(names) = self.names(&dir) else { continue };
            let src = QuadletSource { dir, names, user, rootless, read: &read, list: &list };
            found.extend(quadlet::load_dir(&src));
        }
        self.out.stacks.extend(found);
    }

    /// The YAML files with a top-level `services:` in `dirs` and one level below that no stack
    /// read: gaps, so that none is lost silently.
    pub fn unused_compose_files(&mut self, dirs: &[PathBuf]) {
        let used: BTreeSet<PathBuf> =
            self.out.stacks.iter().flat_map(|s| s.files.iter().map(|f| compose::clean_path(Path::new(f)))).collect();
        let mut seen = BTreeSet::new();
        for dir in dirs {
            let Some(names) = self.names(dir) else { continue };
            let mut look_in = vec![(dir.clone(), names.clone())];
            for n in names.iter().filter(|n| !n.starts_with('.')) {
                let sub = dir.join(n);
                if let Some(sub_names) = self.names(&sub) {
                    look_in.push((sub, sub_names));
                }
            }
            for (d, names) in look_in {
                for n in names.iter().filter(|n| n.ends_with(".yml") || n.ends_with(".yaml")) {
                    let file = compose::clean_path(&d.join(n));
                    if used.contains(&file) || !seen.insert(file.clone()) || !self.looks_like_compose(&file) {
                        continue;
                    }
                    let f = file.display();
                    self.gaps.push(gap(format!(
                        "looks like a compose file: {f} (a top-level services: that no stack found uses): name its stack with --compose-file {f} (MAIN:{f} when it is an extra -f file)"
                    )));
                }
            }
        }
    }

    fn looks_like_compose(&self, file: &Path) -> bool {
        let small_file =
            std::fs::metadata(self.host.resolve(file, true)).is_ok_and(|m| m.is_file() && m.len() <= MAX_YAML_PROBE);
        if !small_file {
            return false;
        }
        let Ok(text) = self.host.read_to_string(file) else { return false };
        yaml::parse(&text).is_ok_and(|root| root.get("services").is_some())
    }
}

/// Asks the engines, with the human users' (and root's) homes for rootless Docker state.
pub(super) fn ask_engines(host: &Host, owners: &[HomeOwner]) -> engine::EngineAnswers {
    let users: Vec<EngineUser> =
        owners.iter().filter(|u| u.uid != 0).map(|u| EngineUser { name: &u.name, home: &u.home }).collect();
    engine::ask(host, &users)
}
