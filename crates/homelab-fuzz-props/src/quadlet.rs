//! Podman quadlet units (podman-systemd.unit(5)): a directory of `.container` units with their
//! drop-ins and environment files, all from the fuzz input, served through the reader and
//! lister callbacks the loader reads the host with.
//!
//! The input is files as [`crate::files`] holds them, served from `/etc/containers/systemd`:
//! the text before the first `#@ NAME` line is `app.container` (left out when it is empty and
//! other files follow), each `#@ NAME` line starts another file (`plex.container`,
//! `plex.container.d/10-gpu.conf`, `plex.env`). `#` starts a comment in a unit file, so a seed
//! reads as the files it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use homelab_probe::model::compose::ComposeStack;
use homelab_probe::sources::quadlet::{QuadletSource, SYSTEM_DIRS, UnitUser, load_dir, parse_unit};

use crate::{assert_line_within, files, text};

/// The unit directory the files are served from (the system's, rootful).
pub const UNIT_DIR: &str = SYSTEM_DIRS[0];

/// The names of the served files directly in `dir`, `None` when there are none (as a
/// directory that does not exist lists).
fn listing(served: &BTreeMap<PathBuf, String>, dir: &Path) -> Option<Vec<String>> {
    let names: Vec<String> = served
        .keys()
        .filter(|p| p.parent() == Some(dir))
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Checks one file's parse: every assignment and error names the file and a line of it that
/// holds content (not blank, not a comment), each line at most once and in order; sections
/// and keys are as systemd.syntax(7) reads them.
fn check_unit(text: &str, file: &Path) {
    let (assignments, errors) = parse_unit(text, file);
    let lines: Vec<&str> = text.lines().collect();
    let mut reported = BTreeSet::new();
    let mut check_line = |line: usize, what: &dyn std::fmt::Display| {
        assert!(line >= 1 && line <= lines.len(), "{what}: line {line}, the input has {} lines", lines.len());
        let content = lines[line - 1].trim();
        assert!(
            !content.is_empty() && !content.starts_with(['#', ';']),
            "{what}: line {line} is blank or a comment: {content:?}"
        );
        assert!(reported.insert(line), "{what}: line {line} reported twice");
    };
    for a in &assignments {
        let what = format!("{}={} in [{}]", a.key, a.value, a.section);
        check_line(a.line, &what);
        assert_eq!(a.file, file, "{what}: wrong file");
        assert!(!a.section.is_empty() && !a.section.contains(['[', ']']), "{what}: section");
        assert!(!a.key.contains('=') && a.key == a.key.trim(), "{what}: key");
        assert_eq!(a.value, a.value.trim(), "{what}: value not trimmed");
    }
    assert!(assignments.windows(2).all(|w| w[0].line < w[1].line), "assignments out of line order");
    for e in &errors {
        check_line(e.line, e);
        assert_eq!(e.file, file, "{e}: wrong file");
        assert!(!e.message.is_empty(), "{e}: empty message");
    }
    assert!(errors.windows(2).all(|w| w[0].line < w[1].line), "errors out of line order");
}

/// The quadlet target: each served file's parse (every assignment and error on a line of it
/// that holds content, each line at most once, in order); then the directory as capture loads
/// it: one service per `.container` unit, named as podman's quadlet names its service
/// (tests/quadlet_oracle.rs), on a line of its unit; every problem names a served file and a
/// line of it; the stack's JSON reads back as itself.
pub fn quadlet(data: &[u8]) {
    let text = text(data);
    let dir = PathBuf::from(UNIT_DIR);
    let main = dir.join("app.container");
    let mut served = files::files(&text, &dir, "app.container");
    if served.len() > 1 && served.get(&main).is_some_and(String::is_empty) {
        served.remove(&main);
    }
    for (path, t) in &served {
        check_unit(t, path);
    }

    let names = listing(&served, &dir).unwrap_or_default();
    let read = |p: &Path| served.get(p).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound));
    let list = |d: &Path| listing(&served, d);
    let src = QuadletSource {
        dir: dir.clone(),
        names: names.clone(),
        user: UnitUser { name: "root".into(), uid: 0, home: "/root".into() },
        rootless: false,
        read: &read,
        list: &list,
    };
    // Each unit and the name quadlet gives its service: the file name without its last
    // extension, unless that dot is the first character (`.container` stays whole).
    let mut units: Vec<(&str, PathBuf)> = names
        .iter()
        .filter(|n| n.ends_with(".container"))
        .map(|n| (n.rfind('.').filter(|&d| d > 0).map_or(n.as_str(), |d| &n[..d]), dir.join(n)))
        .collect();
    units.sort_by(|a, b| a.1.cmp(&b.1));
    let Some(stack) = load_dir(&src) else {
        assert!(units.is_empty(), "units {units:?} but no stack");
        return;
    };
    let services: Vec<(&str, PathBuf)> =
        stack.services.iter().map(|s| (s.name.as_str(), PathBuf::from(&s.file))).collect();
    assert_eq!(services, units, "one service per unit, named as quadlet names it");
    for s in &stack.services {
        let Some(t) = served.get(Path::new(&s.file)) else { panic!("service {} names {}, not served", s.name, s.file) };
        assert_line_within(s.line, t, &format!("service {} in {}", s.name, s.file));
    }
    for p in &stack.problems {
        assert!(!p.message.is_empty(), "{p}: empty message");
        let Some(t) = served.get(&p.file) else { panic!("{p}: names a file not served") };
        assert_line_within(p.line, t, p);
    }
    let json = serde_json::to_string(&stack).expect("a stack serialises");
    let back: ComposeStack = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(back, stack, "the stack's JSON reads back differently");
}
