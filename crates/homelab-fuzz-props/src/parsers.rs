//! The parsers of single files: fstab, mountinfo, group, passwd, os-release, the sysroot
//! manifest, expectations, `.env`, CDI specs, Docker's `daemon.json` and `ExecStart=` lines.

use std::collections::BTreeSet;
use std::path::Path;

use homelab_probe::Expectations;
use homelab_probe::ExpectationsError;
use homelab_probe::host::{HostError, SysrootManifest};
use homelab_probe::model::text::ParseError;
use homelab_probe::sources::compose::{dotenv, interpolate};
use homelab_probe::sources::{Parsed, cdi, docker, fstab as fstab_src, group as group_src, mountinfo as mi};
use homelab_probe::sources::{os_release as os_src, passwd as passwd_src};

use crate::{assert_line_within, assert_yaml_line_within, text};

/// Checks a lenient parse: every entry and error is on a line of `text`, each line is
/// reported at most once and in order, and exactly the lines `counted` says hold content are
/// reported (one bad line never hides another).
#[track_caller]
fn check_lines<T>(p: &Parsed<T>, text: &str, file: &Path, counted: impl Fn(&str) -> bool) {
    let n = text.lines().count();
    let mut reported = BTreeSet::new();
    for (line, _) in &p.entries {
        assert!(*line >= 1 && *line <= n, "entry on line {line}, the input has {n} lines");
        assert!(reported.insert(*line), "line {line} reported twice");
    }
    for e in &p.errors {
        assert_eq!(e.file, file, "{e}: wrong file");
        assert!(e.line >= 1 && e.line <= n, "{e}: line not within the input ({n} lines)");
        assert!(reported.insert(e.line), "{e}: line reported twice");
        assert!(!e.message.is_empty(), "{e}: empty message");
    }
    assert!(p.entries.windows(2).all(|w| w[0].0 < w[1].0), "entries out of line order");
    let want: BTreeSet<usize> = text.lines().enumerate().filter(|(_, l)| counted(l)).map(|(i, _)| i + 1).collect();
    assert_eq!(reported, want, "the lines reported (entries and errors) are not the lines with content");
}

/// fstab(5): lines, accounting, and each entry written back with `to_line` reads back as
/// itself (with the defaults that `to_line` writes out).
pub fn fstab(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/etc/fstab");
    let p = fstab_src::parse(&text, file);
    check_lines(&p, &text, file, |l| {
        let t = l.trim_start_matches([' ', '\t']).trim_end_matches([' ', '\t', '\r', '\x0b', '\x0c']);
        !t.is_empty() && !t.starts_with('#')
    });
    for (line, e) in &p.entries {
        let written = e.to_line();
        let back = fstab_src::parse(&written, file);
        assert!(back.errors.is_empty(), "line {line} written as {written:?} does not read back: {:?}", back.errors);
        assert_eq!(back.entries.len(), 1, "line {line} written as {written:?}");
        let mut want = e.clone();
        if want.options.is_empty() {
            want.options = vec!["defaults".into()];
        }
        want.freq = Some(want.freq.unwrap_or(0));
        want.passno = Some(want.passno.unwrap_or(0));
        assert_eq!(back.entries[0].1, want, "line {line} written as {written:?} reads back differently");
    }
}

/// proc_pid_mountinfo(5): lines and accounting; then the mount tree's path lookup for every
/// mount point in the table, which must end on a mount of the table at or above the path.
pub fn mountinfo(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/proc/self/mountinfo");
    let p = mi::parse(&text, file);
    check_lines(&p, &text, file, |l| !l.is_empty());
    let mounts: Vec<mi::MountInfo> = p.entries.into_iter().map(|(_, m)| m).collect();
    let mut paths: BTreeSet<String> = mounts.iter().filter_map(|m| normalise(&m.mount_point)).collect();
    paths.insert("/".into());
    for path in &paths {
        let Some(v) = mi::visibility(&mounts, path) else {
            assert!(!mounts.iter().any(|m| m.mount_point == "/"), "no holder of {path} though / is mounted");
            continue;
        };
        let at = &v.holder.mount_point;
        assert!(
            at == "/" || path == at || path.starts_with(&format!("{at}/")),
            "{path} is held by the mount at {at}, which is not at or above it"
        );
        assert_eq!(v.at_path, at == path, "{path}: at_path");
        assert!(v.hidden.iter().all(|h| h.mount_point == *path && !std::ptr::eq(*h, v.holder)), "{path}: hidden");
    }
}

/// `path` absolute and normalised (no empty, `.` or `..` components), as `visibility` wants.
fn normalise(path: &str) -> Option<String> {
    let rest = path.strip_prefix('/')?;
    let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return None;
    }
    Some(format!("/{}", comps.join("/")))
}

/// The lines nss_files reads as entries or errors: not blank, not a comment, not NIS compat.
fn colon_file_line(l: &str) -> bool {
    let t = l.trim_start();
    !t.is_empty() && !t.starts_with('#') && !l.starts_with('+') && !l.starts_with('-')
}

/// group(5): lines, accounting, and each entry's `to_line` reads back as itself.
pub fn group(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/etc/group");
    let p = group_src::parse(&text, file);
    check_lines(&p, &text, file, colon_file_line);
    for (line, e) in &p.entries {
        let back = group_src::parse(&e.to_line(), file);
        assert_eq!(back.entries.len(), 1, "line {line} written as {:?}: {:?}", e.to_line(), back.errors);
        assert_eq!(&back.entries[0].1, e, "line {line} reads back differently");
    }
}

/// passwd(5): lines, accounting, and each entry's `to_line` reads back as itself.
pub fn passwd(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/etc/passwd");
    let p = passwd_src::parse(&text, file);
    check_lines(&p, &text, file, colon_file_line);
    for (line, e) in &p.entries {
        let back = passwd_src::parse(&e.to_line(), file);
        assert_eq!(back.entries.len(), 1, "line {line} written as {:?}: {:?}", e.to_line(), back.errors);
        assert_eq!(&back.entries[0].1, e, "line {line} reads back differently");
    }
}

/// os-release(5): every key is a shell variable name.
pub fn os_release(data: &[u8]) {
    let text = text(data);
    for key in os_src::parse(&text).keys() {
        assert!(!key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "key {key:?}");
    }
}

/// `homelab-sysroot.toml`: a manifest, or an error naming the file and a line of it; a manifest
/// written back as TOML reads back as itself.
pub fn sysroot_manifest(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/sysroot/homelab-sysroot.toml");
    match SysrootManifest::parse(&text, file) {
        Ok(m) => {
            let written = toml::to_string(&m).expect("a manifest serialises");
            let back = SysrootManifest::parse(&written, file).expect("a written manifest reads back");
            assert_eq!(format!("{back:?}"), format!("{m:?}"), "written as {written:?}");
        }
        Err(HostError::Manifest { file: f, line, message }) => {
            assert_eq!(f, file);
            assert!(!message.is_empty());
            assert_line_within(line, &text, &message);
        }
        Err(e) => panic!("not a manifest error: {e}"),
    }
}

/// `homelab-probe.toml`: expectations, or an error naming the file, a line and a column of
/// it; expectations written with `to_toml_string` read back as themselves, and writing them
/// again gives the same text.
pub fn expectations(data: &[u8]) {
    let text = text(data);
    let file = Path::new("homelab-probe.toml");
    match Expectations::from_toml_str(&text, Some(file)) {
        Ok(e) => {
            let written = e.to_toml_string();
            let back = Expectations::from_toml_str(&written, Some(file))
                .unwrap_or_else(|err| panic!("written as {written:?}, does not read back: {err}"));
            assert_eq!(back, e, "written as {written:?}");
            assert_eq!(back.to_toml_string(), written, "writing twice differs");
        }
        Err(ExpectationsError::Invalid { file: f, line, column, message }) => {
            assert_eq!(f.as_deref(), Some(file));
            assert!(!message.is_empty());
            assert_line_within(line, &text, &message);
            assert!(column >= 1, "{message}: column {column}");
        }
        Err(e) => panic!("not a parse error: {e}"),
    }
}

/// The variables an outer environment holds for `.env` and interpolation.
fn outer(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/alice".into()),
        "PUID" => Some("1000".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// A Compose `.env` file (with the interpolation of its values), and the same text as one
/// interpolated string: lines within the input, in order.
pub fn compose_env(data: &[u8]) {
    let text = text(data);
    let file = Path::new("/srv/stack/.env");
    let p = dotenv::parse(&text, file, &outer);
    for (line, v) in &p.entries {
        assert_line_within(*line, &text, &format!("variable {}", v.name));
        assert!(!v.name.is_empty(), "line {line}: a variable without a name");
    }
    assert!(p.entries.windows(2).all(|w| w[0].0 <= w[1].0), "entries out of line order");
    for e in &p.errors {
        assert_eq!(e.file, file);
        assert_line_within(e.line, &text, e);
    }
    if let Ok(i) = interpolate::interpolate(&text, &outer) {
        assert!(i.unset.iter().all(|n| outer(n).is_none()), "a set variable reported unset: {:?}", i.unset);
    }
}

/// Checks that a single-file parser's error names `file` and a line of `text`.
#[track_caller]
fn check_error(e: &ParseError, text: &str, file: &Path) {
    assert_eq!(e.file, file, "{e}");
    assert!(!e.message.is_empty(), "{e}: empty message");
    assert_line_within(e.line, text, e);
}

/// A CDI spec, JSON when the first byte is even, YAML otherwise: a summary whose device names
/// are `kind=name`, or an error naming the file and a line of it.
pub fn cdi(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = text(rest);
    let file = if mode % 2 == 0 { Path::new("/etc/cdi/vendor.json") } else { Path::new("/etc/cdi/vendor.yaml") };
    match cdi::parse(&text, file) {
        Ok(s) => {
            assert!(s.kind.contains('/'), "kind {:?}", s.kind);
            for d in &s.devices {
                assert!(d.qualified_name.starts_with(&format!("{}=", s.kind)), "{}", d.qualified_name);
            }
        }
        Err(e) => {
            assert_eq!(e.file, file, "{e}");
            assert!(!e.message.is_empty(), "{e}: empty message");
            assert_yaml_line_within(e.line, &text, &e);
        }
    }
}

/// Docker's configuration: a `daemon.json` when the first byte is even (settings or an error
/// naming a line of it); otherwise unit texts separated by NUL bytes whose `ExecStart=` lines
/// may name a `--config-file`, which must be a word of the last such line.
pub fn docker(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = text(rest);
    if mode % 2 == 0 {
        let file = Path::new("/etc/docker/daemon.json");
        if let Err(e) = docker::parse_daemon_json(&text, file) {
            check_error(&e, &text, file);
        }
        return;
    }
    let units: Vec<&str> = text.split('\0').collect();
    if let Some(f) = docker::config_file_from_exec_start(units.iter().copied()) {
        assert!(text.contains("--config-file"), "config file {f:?} without --config-file");
        assert!(text.contains(f.as_str()), "config file {f:?} is not in the units");
    }
}
