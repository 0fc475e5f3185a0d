//! Finding every stack: the corpus of homelab layouts (`tests/fixtures/compose-corpus`: compose
//! files under other names, `COMPOSE_FILE` in `.env`, extends from `hwaccel` files, an extra
//! `-f` file, a podman-compose file, a directory that is itself a stack) is found, or named in a
//! gap, and never lost silently; with what a real Docker recorded about the same stacks
//! (`tests/fixtures/docker-recorded`, `compose-corpus-docker`), every stack is found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use homelab_probe::capture::{CaptureOptions, ComposeFiles, capture};
use homelab_probe::model::compose::{ComposeStack, Engine, FoundBy};
use homelab_probe::model::snapshot::Snapshot;
use homelab_probe::sources::engine;
use homelab_probe::{Host, plan};
use homelab_test_support::{fixture, sysroot};
use serde_json::Value;

const DOCKER: &str = "/home/palav/docker";

/// Every stack of the corpus: its directory and the compose files it is started from.
fn corpus() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("docker/arr", vec!["compose.yaml"]),
        ("docker/frigate", vec!["frigate.yml", "hwaccel.yml"]),
        ("docker/immich", vec!["docker-compose.yml"]),
        ("docker/jellyfin", vec!["jellyfin.yml"]),
        ("docker/photoprism", vec!["podman-compose.yml"]),
        ("docker/plex", vec!["docker-compose-plex.yaml"]),
        ("docker/tdarr", vec!["docker-compose.yml", "hwaccel.yml"]),
        ("Projects/homelab", vec!["compose.yaml"]),
    ]
}

fn snapshot_of(root: &str, opts: &CaptureOptions) -> Snapshot {
    capture(&Host::at(sysroot(root)).unwrap(), opts)
}

fn stack<'a>(s: &'a Snapshot, dir: &str) -> Option<&'a ComposeStack> {
    s.compose.stacks.iter().find(|st| st.dir == format!("/home/palav/{dir}"))
}

fn compose_gaps(s: &Snapshot) -> Vec<String> {
    s.gaps.iter().filter(|g| g.section == "compose").map(|g| g.reason.clone()).collect()
}

/// Whether the stack in `dir` read all its `files`.
fn reads_all(st: &ComposeStack, dir: &str, files: &[&str]) -> bool {
    files.iter().all(|f| st.files.contains(&format!("/home/palav/{dir}/{f}")))
}

#[test]
fn every_corpus_stack_is_found_or_named_in_a_gap() {
    let s = snapshot_of("compose-corpus", &CaptureOptions::default());
    let gaps = compose_gaps(&s);
    let (mut found, mut warned) = (0, 0);
    for (dir, files) in corpus() {
        match stack(&s, dir) {
            Some(st) if reads_all(st, dir, &files) => found += 1,
            _ => {
                // Not found whole: each file it is started from that was not read is a gap.
                for f in &files {
                    let path = format!("/home/palav/{dir}/{f}");
                    if stack(&s, dir).is_some_and(|st| st.files.contains(&path)) {
                        continue;
                    }
                    let want = format!("looks like a compose file: {path} ");
                    assert!(
                        gaps.iter().any(|g| g.starts_with(&want)),
                        "{dir}: {path} is neither read nor in a gap: {gaps:#?}"
                    );
                }
                warned += 1;
            }
        }
    }
    assert_eq!((found, warned), (5, 3), "found and warned of {} stacks", corpus().len());
    // Negative control: notes.yml has no top-level services:, immich's hwaccel files are read
    // through extends, homelab's subdirectories through include.
    assert_eq!(gaps.len(), 3, "{gaps:#?}");
    assert!(gaps.iter().all(|g| !g.contains("notes.yml") && !g.contains("hwaccel.ml") && !g.contains("dashboard")));
    // ~/Projects/homelab is one stack, not three.
    assert_eq!(s.compose.stacks.iter().filter(|st| st.dir.starts_with("/home/palav/Projects")).count(), 1);
    let homelab = stack(&s, "Projects/homelab").unwrap();
    assert_eq!(homelab.services.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(), vec!["homepage", "tautulli"]);
    assert_eq!(stack(&s, "docker/photoprism").unwrap().engine, Some(Engine::Podman));
}

#[test]
fn with_dockers_state_every_corpus_stack_is_found() {
    let s = snapshot_of("compose-corpus-docker", &CaptureOptions::default());
    assert_eq!(compose_gaps(&s), Vec::<String>::new());
    for (dir, files) in corpus() {
        let st = stack(&s, dir).unwrap_or_else(|| panic!("{dir} not found"));
        assert!(reads_all(st, dir, &files), "{dir}: read {:?}, started from {files:?}", st.files);
        assert!(st.problems.is_empty(), "{dir}: {:?}", st.problems);
    }
    // Found through the labels: the files under other names, and tdarr's extra -f file (what
    // runs wins over what a plain `docker compose` there would read).
    let by_labels: BTreeMap<&str, (&str, &Vec<String>)> = s
        .compose
        .stacks
        .iter()
        .filter(|st| st.found_by == FoundBy::EngineLabels)
        .map(|st| (st.name.as_str(), (st.dir.as_str(), &st.command_files)))
        .collect();
    assert_eq!(by_labels.keys().copied().collect::<Vec<_>>(), vec!["jellyfin", "plex", "tdarr"]);
    assert_eq!(
        by_labels["tdarr"].1,
        &vec![format!("{DOCKER}/tdarr/docker-compose.yml"), format!("{DOCKER}/tdarr/hwaccel.yml")]
    );
    let docker: Vec<&str> =
        s.compose.stacks.iter().filter(|st| st.engine == Some(Engine::Docker)).map(|st| st.name.as_str()).collect();
    assert_eq!(docker, vec!["frigate", "immich", "tdarr", "homelab", "jellyfin", "plex"]);
    assert_eq!(s.compose.engines.len(), 1);
    assert_eq!(s.compose.engines[0].source, "/var/lib/docker/containers");

    // plan starts each stack from the files it was started from.
    let p = plan::plan(&s).unwrap();
    let module = p.files().into_iter().find(|(n, _)| *n == "hardware-parity.nix").unwrap().1;
    assert!(
        module
            .contains(&format!("docker compose --project-name plex --file {DOCKER}/plex/docker-compose-plex.yaml up")),
        "{module}"
    );
    assert!(module.contains(&format!(
        "docker compose --project-name tdarr --file {DOCKER}/tdarr/docker-compose.yml --file {DOCKER}/tdarr/hwaccel.yml up"
    )));
}

/// The oracle of the label grouping: the projects we derive from `docker inspect` are the ones
/// `docker compose ls --all` printed for the same containers.
#[test]
fn projects_from_labels_are_what_docker_compose_ls_lists() {
    let dir = fixture("docker-recorded");
    let inspect = std::fs::read_to_string(dir.join("docker-inspect.json")).unwrap();
    let ours = engine::compose_projects(&engine::parse_docker(&inspect, Path::new("docker-inspect.json")).unwrap());
    let ls: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("compose-ls.json")).unwrap()).unwrap();
    let theirs: Vec<(String, String)> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["Name"].as_str().unwrap().to_owned(), p["ConfigFiles"].as_str().unwrap().to_owned()))
        .collect();
    let ours: Vec<(String, String)> = ours.iter().map(|p| (p.name.clone(), p.config_files.join(","))).collect();
    assert_eq!(ours, theirs);
    assert_eq!(theirs.len(), 6);

    // The same projects from Docker's state on disk.
    let state = sysroot("compose-corpus-docker").join("var/lib/docker/containers");
    let mut containers = Vec::new();
    for e in std::fs::read_dir(&state).unwrap() {
        let f = e.unwrap().path().join("config.v2.json");
        containers.extend(engine::parse_docker(&std::fs::read_to_string(&f).unwrap(), &f).unwrap());
    }
    let on_disk: Vec<(String, String)> =
        engine::compose_projects(&containers).iter().map(|p| (p.name.clone(), p.config_files.join(","))).collect();
    assert_eq!(on_disk, theirs);
}

/// podman-compose writes `config_files` relative to the working directory.
#[test]
fn podman_compose_labels_name_the_file_relative_to_the_project() {
    let f = fixture("docker-recorded/podman-ps.json");
    let c = engine::parse_podman_ps(&std::fs::read_to_string(&f).unwrap(), &f).unwrap();
    let p = engine::compose_projects(&c);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "photoprism");
    assert_eq!(p[0].config_files, vec![format!("{DOCKER}/photoprism/podman-compose.yml")]);
}

#[test]
fn a_compose_dir_that_is_a_stack_is_one_stack() {
    let mut opts = CaptureOptions::default();
    opts.compose_dirs = vec![PathBuf::from("/home/palav/Projects/homelab")];
    let s = snapshot_of("compose-corpus", &opts);
    assert_eq!(s.compose.stacks.len(), 1, "{:#?}", s.compose.stacks);
    assert_eq!(s.compose.stacks[0].name, "homelab");
    assert_eq!(compose_gaps(&s), Vec::<String>::new());
}

#[test]
fn compose_files_are_taken_by_name_with_their_env_file() {
    let mut opts = CaptureOptions::default();
    opts.compose_dirs = vec![PathBuf::from("/nonexistent")];
    opts.compose_files = vec![
        ComposeFiles {
            files: vec![PathBuf::from(format!("{DOCKER}/plex/docker-compose-plex.yaml"))],
            env_files: vec![PathBuf::from(format!("{DOCKER}/plex/.env"))],
        },
        ComposeFiles {
            files: vec![PathBuf::from(format!("{DOCKER}/jellyfin/jellyfin.yml"))],
            // Compose refuses a missing --env-file; so does the reader, naming it.
            env_files: vec![PathBuf::from(format!("{DOCKER}/jellyfin/missing.env"))],
        },
    ];
    let s = snapshot_of("compose-corpus", &opts);
    let plex = stack(&s, "docker/plex").unwrap();
    assert_eq!(plex.found_by, FoundBy::ComposeFileOption);
    assert_eq!(plex.services[0].env("PGID"), Some("110"));
    assert!(plex.problems.is_empty(), "{:?}", plex.problems);
    let jf = stack(&s, "docker/jellyfin").unwrap();
    assert!(
        jf.problems.iter().any(|p| p.to_string().starts_with(&format!("{DOCKER}/jellyfin/missing.env:0: cannot read")))
    );
}
