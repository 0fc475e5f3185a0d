//! Which Compose projects the container engines know (the labels `sources::engine` reads), and
//! from where: on the live host the engines' own commands (`docker inspect`, `podman ps`), and
//! Docker's state on disk (`<data-root>/containers/*/config.v2.json`, rootless under
//! `~/.local/share/docker`), which a mounted disk of the old host still holds and which answers
//! when the daemon does not.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt as _;

use super::Host;
use crate::model::compose::{Engine, EngineReport};
use crate::sources::docker::parse_daemon_json;
use crate::sources::engine::{self, LabeledContainer};

/// How long one engine command may take (a hung daemon must not hang capture).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Docker's default data root.
pub const DOCKER_DATA_ROOT: &str = "/var/lib/docker";

/// What the engines said, and what could not be asked (each a sentence for the snapshot's gaps).
#[derive(Debug, Default)]
pub struct EngineAnswers {
    /// One report per engine (and rootless user) that answered.
    pub reports: Vec<EngineReport>,
    /// Engines that exist but could not be asked, and why.
    pub gaps: Vec<String>,
}

/// A user whose rootless Docker state capture looks for.
pub struct EngineUser<'a> {
    /// Login name.
    pub name: &'a str,
    /// Home directory.
    pub home: &'a str,
}

/// Asks every engine of `host`: the system's Docker (live: `docker inspect`; else, or when the
/// daemon does not answer, its state on disk), each user's rootless Docker state on disk, and
/// (live) the system's Podman.
pub fn ask(host: &Host, users: &[EngineUser]) -> EngineAnswers {
    let mut out = EngineAnswers::default();
    let data_root = docker_data_root(host);
    let from_daemon = if host.is_live() { docker_cli(&mut out) } else { false };
    if !from_daemon {
        state_on_disk(host, &data_root, None, &mut out);
    }
    for u in users {
        let dir = Path::new(u.home).join(".local/share/docker");
        state_on_disk(host, &dir, Some(u.name), &mut out);
    }
    // `podman ps` creates Podman's storage where there is none: ask only a Podman that has some.
    if host.is_live() && host.exists(PODMAN_STORAGE) {
        podman_cli(&mut out);
    }
    out
}

/// Rootful Podman's default storage (containers-storage.conf(5) `graphroot`).
pub const PODMAN_STORAGE: &str = "/var/lib/containers/storage";

/// `data-root` of `/etc/docker/daemon.json`, else the default.
fn docker_data_root(host: &Host) -> PathBuf {
    let file = Path::new("/etc/docker/daemon.json");
    host.read_to_string(file)
        .ok()
        .and_then(|t| parse_daemon_json(&t, file).ok())
        .and_then(|s| s.data_root)
        .map_or_else(|| PathBuf::from(DOCKER_DATA_ROOT), PathBuf::from)
}

/// Runs `program args`, returning its standard output; `Err` says why not (not installed,
/// timed out, failed with its first line of standard error). `Ok(None)`: not installed.
pub fn run(program: &str, args: &[&str]) -> Result<Option<String>, String> {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("`{shown}`: {e}")),
    };
    // Read both pipes while waiting, so a large answer cannot block the child.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.as_mut().map(|o| o.read_to_string(&mut s));
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.as_mut().map(|o| o.read_to_string(&mut s));
        s
    });
    let status = match child.wait_timeout(COMMAND_TIMEOUT) {
        Ok(Some(s)) => s,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{shown}` did not answer within {} s", COMMAND_TIMEOUT.as_secs()));
        }
        Err(e) => return Err(format!("`{shown}`: {e}")),
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(Some(out))
    } else {
        let why = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_owned();
        Err(format!("`{shown}` failed ({status}): {why}"))
    }
}

/// The system's Docker through its command. Whether it answered.
fn docker_cli(out: &mut EngineAnswers) -> bool {
    let ids = match run("docker", &["ps", "-aq", "--no-trunc"]) {
        Ok(Some(ids)) => ids,
        Ok(None) => return false,
        Err(e) => {
            out.gaps.push(format!(
                "Docker did not answer ({e}): its projects are read from its state on disk where that can be read"
            ));
            return false;
        }
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let mut containers = Vec::new();
    if !ids.is_empty() {
        let mut args = vec!["inspect"];
        args.extend(&ids);
        let parsed = run("docker", &args)
            .and_then(|t| t.ok_or_else(|| "docker disappeared".to_owned()))
            .and_then(|t| engine::parse_docker(&t, Path::new("docker inspect")).map_err(|e| e.to_string()));
        match parsed {
            Ok(c) => containers = c,
            Err(e) => {
                out.gaps.push(format!("Docker's containers could not be inspected: {e}"));
                return false;
            }
        }
    }
    push(out, Engine::Docker, "docker inspect", None, &containers);
    true
}

/// The system's Podman through its command (rootful: the containers of root).
fn podman_cli(out: &mut EngineAnswers) {
    match run("podman", &["ps", "-a", "--format", "json"]) {
        Ok(None) => {}
        Ok(Some(text)) => match engine::parse_podman_ps(&text, Path::new("podman ps -a --format json")) {
            Ok(c) => push(out, Engine::Podman, "podman ps -a --format json", None, &c),
            Err(e) => out.gaps.push(format!("Podman's answer could not be read: {e}")),
        },
        Err(e) => out.gaps.push(format!("Podman did not answer ({e})")),
    }
}

/// Docker's state under `root` (`<root>/containers/*/config.v2.json`), when there is one.
fn state_on_disk(host: &Host, root: &Path, user: Option<&str>, out: &mut EngineAnswers) {
    let dir = root.join("containers");
    let ids = match host.read_dir(&dir) {
        Ok(ids) => ids,
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return,
        Err(e) => {
            out.gaps.push(format!("Docker's state could not be read: {e}"));
            return;
        }
    };
    let mut containers = Vec::new();
    let mut ids: Vec<_> = ids.into_iter().collect();
    ids.sort();
    for id in ids {
        let file = dir.join(&id).join("config.v2.json");
        match host
            .read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| engine::parse_docker(&t, &file).map_err(|e| e.to_string()))
        {
            Ok(c) => containers.extend(c),
            Err(e) => out.gaps.push(format!("a container of Docker's state could not be read: {e}")),
        }
    }
    push(out, Engine::Docker, &dir.display().to_string(), user, &containers);
}

fn push(out: &mut EngineAnswers, engine: Engine, source: &str, user: Option<&str>, containers: &[LabeledContainer]) {
    out.reports.push(EngineReport {
        engine,
        source: source.to_owned(),
        rootless_user: user.map(str::to_owned),
        projects: engine::compose_projects(containers),
    });
}
