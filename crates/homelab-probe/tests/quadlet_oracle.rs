//! The quadlet reader against podman's own quadlet generator (Podman 5.4's
//! `/usr/libexec/podman/quadlet`; scripts/setup-debian --test installs it): for every
//! `.container` unit of the `quadlet-host` fixture (a system directory with a drop-in, an
//! EnvironmentFile and a `.volume` unit; a user's rootless directory with specifiers, quoting,
//! continuation lines with a comment between them, relative volumes), the `podman run` line
//! quadlet generates has the image, user, groups, devices, volumes, user namespace, kept
//! groups and captured environment that the reader records. Refusals and service names agree
//! too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_probe::model::compose::{CAPTURED_ENV, ComposeService, ComposeStack, KEEP_GROUPS};
use homelab_probe::sources::quadlet::{self, QuadletSource, UnitUser};
use homelab_test_support::sysroot;

fn quadlet_binary() -> PathBuf {
    ["/usr/libexec/podman/quadlet", "/usr/local/libexec/podman/quadlet"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("podman's quadlet generator is missing: run scripts/setup-debian --test")
}

/// `quadlet -dryrun` on `dir`: each generated service's `podman run` words.
fn generated(dir: &Path, user: bool) -> (BTreeMap<String, Vec<String>>, String) {
    let mut cmd = Command::new(quadlet_binary());
    cmd.env("QUADLET_UNIT_DIRS", dir).arg("-dryrun");
    if user {
        cmd.arg("-user");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut runs = BTreeMap::new();
    let mut current = None;
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("---").and_then(|l| l.strip_suffix(".service---")) {
            current = Some(name.to_owned());
        } else if let (Some(exec), Some(name)) = (line.strip_prefix("ExecStart=/usr/bin/podman run "), &current) {
            runs.insert(name.clone(), words(exec));
        }
    }
    (runs, stderr)
}

/// The words of an ExecStart= line as quadlet quotes them (double quotes, backslash escapes).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut in_quote, mut started) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => cur.extend(chars.next()),
            '"' => {
                in_quote = !in_quote;
                started = true;
                continue;
            }
            ' ' if !in_quote => {
                if started || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                started = false;
                continue;
            }
            c => cur.push(c),
        }
        started = true;
    }
    if started || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What the oracle's `podman run` words say, in the reader's terms.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    image: Option<String>,
    user: Option<String>,
    group_add: Vec<String>,
    devices: Vec<(String, String, String)>,
    volumes: Vec<(Option<String>, String, bool)>,
    userns: Option<String>,
    keep_groups: bool,
    env: BTreeMap<String, String>,
}

/// podman's --env-file format: NAME=VALUE lines, `#` comments.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_owned(), v.to_owned())))
        .collect()
}

fn device(spec: &str) -> (String, String, String) {
    let mut p = spec.splitn(3, ':');
    let src = p.next().unwrap().to_owned();
    let dst = p.next().unwrap_or(&src).to_owned();
    let perm = p.next().unwrap_or("rwm").to_owned();
    (src, dst, perm)
}

fn oracle_run(w: &[String], subst: &dyn Fn(&str) -> String, root: &Path) -> Run {
    let mut r = Run {
        image: w.last().cloned(),
        user: None,
        group_add: vec![],
        devices: vec![],
        volumes: vec![],
        userns: None,
        keep_groups: false,
        env: BTreeMap::new(),
    };
    let mut env = BTreeMap::new();
    let mut files = BTreeMap::new();
    for pair in w.windows(2) {
        let v = subst(&pair[1]);
        match pair[0].as_str() {
            "--user" => r.user = Some(v),
            "--group-add" => r.group_add.push(v),
            "--device" => r.devices.push(device(&v)),
            "-v" => {
                let parts: Vec<&str> = v.split(':').collect();
                let (src, dst, opts) = match parts.as_slice() {
                    [d] => (None, *d, ""),
                    [s, d] => (Some(*s), *d, ""),
                    [s, d, o] => (Some(*s), *d, *o),
                    _ => panic!("{v}"),
                };
                // Quadlet resolves relative sources against the directory it read (the sysroot's).
                let src = src.map(|s| s.strip_prefix(root.to_str().unwrap()).unwrap_or(s).to_owned());
                r.volumes.push((src, dst.to_owned(), opts.split(',').any(|o| o == "ro")));
            }
            "--userns" => r.userns = Some(v),
            "--annotation" => r.keep_groups |= v == "run.oci.keep_original_groups=1",
            "--env" => {
                let (k, val) = v.split_once('=').unwrap();
                env.insert(k.to_owned(), val.to_owned());
            }
            "--env-file" => files.extend(env_file(&root.join(v.trim_start_matches('/')))),
            _ => {}
        }
    }
    r.keep_groups |= r.group_add.iter().any(|g| g == KEEP_GROUPS);
    files.extend(env);
    r.env = files.into_iter().filter(|(k, _)| CAPTURED_ENV.contains(&k.as_str())).collect();
    r
}

fn ours_as_run(s: &ComposeService) -> Run {
    Run {
        image: s.image.clone(),
        user: s.user.clone(),
        group_add: s.group_add.clone(),
        devices: s.devices.iter().map(|d| (d.source.clone(), d.target.clone(), d.permissions.clone())).collect(),
        volumes: s.volumes.iter().map(|v| (v.source.clone(), v.target.clone(), v.read_only)).collect(),
        userns: s.userns.clone(),
        keep_groups: s.keep_groups || s.group_add.iter().any(|g| g == KEEP_GROUPS),
        env: s.environment.iter().map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())).collect(),
    }
}

/// Reads `dir` of the sysroot `root` as capture does, with host paths for the files it names.
fn ours(root: &Path, dir: &str, user: UnitUser, rootless: bool) -> ComposeStack {
    let on_host = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
    let read = |p: &Path| std::fs::read_to_string(on_host(p));
    let list = |p: &Path| -> Option<Vec<String>> {
        Some(
            std::fs::read_dir(on_host(p))
                .ok()?
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
        )
    };
    let names = list(Path::new(dir)).unwrap();
    quadlet::load_dir(&QuadletSource { dir: PathBuf::from(dir), names, user, rootless, read: &read, list: &list })
        .unwrap()
}

#[test]
fn every_unit_reads_as_quadlet_generates_it() {
    let root = sysroot("quadlet-host");
    let cases = [
        ("/etc/containers/systemd", false, UnitUser { name: "root".into(), uid: 0, home: "/root".into() }),
        (
            "/home/palav/.config/containers/systemd",
            true,
            UnitUser { name: "palav".into(), uid: 1000, home: "/home/palav".into() },
        ),
    ];
    let mut compared = 0;
    for (dir, rootless, user) in cases {
        let host_dir = root.join(dir.trim_start_matches('/'));
        let (runs, stderr) = generated(&host_dir, rootless);
        let stack = ours(&root, dir, user.clone(), rootless);
        assert!(stack.problems.is_empty(), "{:#?}", stack.problems);
        let subst = |s: &str| s.replace("%h", &user.home).replace("%U", &user.uid.to_string());
        let names: Vec<&str> = stack.services.iter().map(|s| s.name.as_str()).collect();
        let generated_names: Vec<&str> = runs.keys().map(String::as_str).filter(|n| !n.ends_with("-volume")).collect();
        assert_eq!(names, generated_names, "{dir}: quadlet said: {stderr}");
        for svc in &stack.services {
            // Relative volume sources: quadlet joins them to the directory it read.
            let theirs = oracle_run(&runs[&svc.name], &subst, &root);
            assert_eq!(ours_as_run(svc), theirs, "{dir}/{}.container", svc.name);
            compared += 1;
        }
    }
    assert_eq!(compared, 3);
}

/// Service names as quadlet gives them to units whose names have more than one extension or
/// start with a dot (found by the quadlet fuzz target: the reader cut every `.container`).
#[test]
fn service_names_agree_with_quadlet() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["app.container.container", ".container", "plex.container"] {
        std::fs::write(tmp.path().join(name), "[Container]\nImage=docker.io/x\n").unwrap();
    }
    let (runs, stderr) = generated(tmp.path(), false);
    let theirs: Vec<&str> = runs.keys().map(String::as_str).collect();
    let read = |p: &Path| std::fs::read_to_string(p);
    let list = |p: &Path| -> Option<Vec<String>> {
        Some(std::fs::read_dir(p).ok()?.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
    };
    let st = quadlet::load_dir(&QuadletSource {
        dir: tmp.path().to_path_buf(),
        names: list(tmp.path()).unwrap(),
        user: UnitUser { name: "root".into(), uid: 0, home: "/root".into() },
        rootless: false,
        read: &read,
        list: &list,
    })
    .unwrap();
    let ours: Vec<&str> = st.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(ours, theirs, "quadlet said: {stderr}");
    assert_eq!(ours, [".container", "app.container", "plex"]);
}

#[test]
fn refusals_agree_with_quadlet() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.container"), "[Container]\nImage=docker.io/x\nGroup=110\n").unwrap();
    let (runs, stderr) = generated(tmp.path(), false);
    assert!(runs.is_empty() && stderr.contains("invalid Group set without User"), "{stderr}");
    let user = UnitUser { name: "root".into(), uid: 0, home: "/root".into() };
    let read = |p: &Path| std::fs::read_to_string(p);
    let list = |p: &Path| -> Option<Vec<String>> {
        Some(std::fs::read_dir(p).ok()?.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
    };
    let names = list(tmp.path()).unwrap();
    let st = quadlet::load_dir(&QuadletSource {
        dir: tmp.path().to_path_buf(),
        names,
        user,
        rootless: false,
        read: &read,
        list: &list,
    })
    .unwrap();
    let msgs: Vec<String> = st.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        msgs,
        vec![format!("{}/a.container:3: Group= without User=: quadlet refuses the unit", tmp.path().display())]
    );
}
