//! What container engines say about the Compose projects they run. Docker Compose (and
//! podman-compose) label every container it creates with its project
//! (`com.docker.compose.project`), the project directory (`...project.working_dir`) and the files
//! it was started from (`...project.config_files`, comma-separated); `docker compose ls` is those
//! labels grouped by project (docker/compose `pkg/compose/ls.go`). So the labels name the stacks
//! a directory search cannot find: files under other names (`docker compose -f plex.yml`), or in
//! directories nobody searched.
//!
//! Three sources, one shape (`&str` in, labelled containers out):
//! - `docker inspect ID...`: a JSON array of container objects; the labels are `Config.Labels`
//!   and the name `Name` (`/plex`), as the Docker Engine API's `ContainerInspect` defines them.
//! - Docker's state on disk, `<data-root>/containers/<id>/config.v2.json`: one such object (the
//!   same `Config.Labels` and `Name`), what a mounted disk of the old host still holds.
//! - `podman ps -a --format json`: an array with `Names` (a list) and `Labels`.
//!
//! podman-compose 1.0.3 writes `config_files` relative to `working_dir` (recorded in
//! `tests/fixtures/docker-recorded/`); such names are joined to the working directory.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::ParseError;
use super::cdi::json_error;
use super::compose::clean_path;
use crate::model::compose::EngineProject;

/// The project label.
pub const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The project directory label.
pub const WORKING_DIR_LABEL: &str = "com.docker.compose.project.working_dir";
/// The label with the files the project was started from.
pub const CONFIG_FILES_LABEL: &str = "com.docker.compose.project.config_files";

/// A container's name and labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabeledContainer {
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct DockerContainer {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Config", default)]
    config: Option<DockerConfig>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

impl From<DockerContainer> for LabeledContainer {
    fn from(c: DockerContainer) -> Self {
        LabeledContainer {
            name: c.name.trim_start_matches('/').to_owned(),
            labels: c.config.and_then(|c| c.labels).unwrap_or_default(),
        }
    }
}

/// Parses `docker inspect` output (an array) or one `config.v2.json` (an object); `file` names
/// it in errors.
pub fn parse_docker(text: &str, file: &Path) -> Result<Vec<LabeledContainer>, ParseError> {
    if text.trim_start().starts_with('[') {
        let list: Vec<DockerContainer> = serde_json::from_str(text).map_err(|e| json_error(&e, text, file))?;
        Ok(list.into_iter().map(Into::into).collect())
    } else {
        let one: DockerContainer = serde_json::from_str(text).map_err(|e| json_error(&e, text, file))?;
        Ok(vec![one.into()])
    }
}

#[derive(Deserialize)]
struct PodmanContainer {
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses `podman ps -a --format json` output; `file` names it in errors.
pub fn parse_podman_ps(text: &str, file: &Path) -> Result<Vec<LabeledContainer>, ParseError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<PodmanContainer> = serde_json::from_str(text).map_err(|e| json_error(&e, text, file))?;
    Ok(list
        .into_iter()
        .map(|c| LabeledContainer {
            name: c.names.into_iter().next().unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
        })
        .collect())
}

/// The Compose projects of `containers`, by name, as `docker compose ls` groups them: the
/// distinct config files of all a project's containers in the order first seen. Containers
/// without the project label (plain `docker run`) are no project.
pub fn compose_projects(containers: &[LabeledContainer]) -> Vec<EngineProject> {
    let mut by_name: BTreeMap<&str, EngineProject> = BTreeMap::new();
    for c in containers {
        let Some(name) = c.labels.get(PROJECT_LABEL) else { continue };
        let dir = c.labels.get(WORKING_DIR_LABEL).filter(|d| !d.is_empty());
        let p = by_name.entry(name.as_str()).or_insert_with(|| EngineProject {
            name: name.clone(),
            working_dir: dir.cloned(),
            config_files: Vec::new(),
            containers: 0,
        });
        p.containers += 1;
        if p.working_dir.is_none() {
            p.working_dir = dir.cloned();
        }
        let files = c.labels.get(CONFIG_FILES_LABEL).map(String::as_str).unwrap_or_default();
        for f in files.split(',').filter(|f| !f.is_empty()) {
            let f = match dir {
                Some(d) if !f.starts_with('/') => clean_path(&Path::new(d).join(f)).display().to_string(),
                _ => f.to_owned(),
            };
            if !p.config_files.contains(&f) {
                p.config_files.push(f);
            }
        }
    }
    by_name.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_json_names_file_and_line() {
        let e = parse_docker("[\n{\"Name\": 5}\n]", Path::new("docker inspect")).unwrap_err();
        assert_eq!(e.file, Path::new("docker inspect"));
        assert_eq!(e.line, 2);
        let e = parse_podman_ps("{", Path::new("podman ps")).unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn relative_config_files_are_joined_to_the_working_dir() {
        let labels = |files: &str| LabeledContainer {
            name: "x".into(),
            labels: [(PROJECT_LABEL, "p"), (WORKING_DIR_LABEL, "/home/palav/docker/p"), (CONFIG_FILES_LABEL, files)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let p = compose_projects(&[labels("podman-compose.yml"), labels("../p/podman-compose.yml,extra.yml")]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].containers, 2);
        assert_eq!(
            p[0].config_files,
            vec!["/home/palav/docker/p/podman-compose.yml", "/home/palav/docker/p/extra.yml"]
        );
        assert!(compose_projects(&[LabeledContainer::default()]).is_empty());
    }
}
