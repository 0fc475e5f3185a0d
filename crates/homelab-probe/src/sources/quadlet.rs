//! Podman quadlet `.container` units, as podman-systemd.unit(5) (Podman 5) defines them, in the
//! unit file syntax of systemd.syntax(7) and systemd.unit(5):
//! - `[Section]` headers; `Key=Value` lines (blanks around the key and the value are cut);
//!   lines whose first non-blank character is `#` or `;` are comments;
//! - a line ending in `\` goes on in the next line (the backslash becomes a space); comment
//!   lines between continued lines are skipped;
//! - specifiers: `%%`, `%h` (the home of the user the unit runs as), `%u`, `%U`, `%n`, `%N`
//!   and `%p` are expanded; the others are left as written (systemd expands them when the
//!   unit starts);
//! - drop-ins: `NAME.container.d/*.conf` beside the unit, in the order of their names, after
//!   the unit itself: list keys add to it, single keys replace it.
//!
//! Of `[Container]`, the keys that decide credentials, devices and paths are read, with the
//! meaning podman-systemd.unit(5) gives them (each checked against podman's own quadlet
//! generator in `tests/quadlet_oracle.rs`):
//! - `Image=`; `ContainerName=` (default `systemd-%N`);
//! - `User=`, `Group=` (`--user USER[:GROUP]`), `GroupAdd=` (one group a line, `keep-groups`
//!   included), `UserNS=`, `Annotation=run.oci.keep_original_groups=1`;
//! - `AddDevice=[-]HOST[:CONTAINER[:PERMISSIONS]]` (a leading `-`: only when the node exists);
//! - `Environment=` (words as systemd splits them: blanks separate, `"..."` and `'...'` quote,
//!   C escapes), `EnvironmentFile=` (read before `Environment=`, which wins, as in podman run);
//! - `Volume=[SOURCE:]TARGET[:OPTIONS]`: an absolute or `%h` source is a bind, a source starting
//!   with `./` or `../` is relative to the unit's directory (as quadlet resolves it), `NAME.volume`
//!   is a quadlet volume (`systemd-NAME`), another name a named volume, no source an
//!   anonymous one.
//!
//! Other keys (and the `[Unit]`, `[Service]`, `[Install]` sections) are accepted and not read.
//! Lines that are not unit file syntax are errors naming file and line, like systemd's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::compose::{
    CAPTURED_ENV, ComposeService, ComposeStack, DeviceMapping, Engine, FoundBy, KEEP_ORIGINAL_GROUPS_ANNOTATION,
    StackKind, VolumeKind, VolumeMount,
};
use crate::model::text::ParseError;
use crate::sources::compose::{ReadFn, clean_path, dotenv, no_env};

/// Where quadlet looks for the system's units (podman-systemd.unit(5), "rootful").
pub const SYSTEM_DIRS: &[&str] = &["/etc/containers/systemd", "/usr/share/containers/systemd"];

/// Where quadlet looks for a user's units, below the home.
pub const USER_DIR: &str = ".config/containers/systemd";

/// One `Key=Value` of a unit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The section it is in (`Container`).
    pub section: String,
    /// The key.
    pub key: String,
    /// The value, continuation lines joined, specifiers not yet expanded.
    pub value: String,
    /// The file.
    pub file: PathBuf,
    /// The line the assignment starts on.
    pub line: usize,
}

/// The assignments of a unit file, in order, and the lines that are not unit file syntax.
pub fn parse_unit(text: &str, file: &Path) -> (Vec<Assignment>, Vec<ParseError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut section: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line_no = i + 1;
        let mut line = raw.trim().to_owned();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        // Continuation: the backslash becomes a space; comment lines in between are skipped.
        while line.ends_with('\\') {
            line.pop();
            line.push(' ');
            let Some((_, next)) = lines.by_ref().find(|(_, l)| !l.trim_start().starts_with(['#', ';'])) else {
                break;
            };
            line.push_str(next.trim());
        }
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(name) if !name.is_empty() && !name.contains(['[', ']']) => section = Some(name.to_owned()),
                _ => errors.push(ParseError {
                    file: file.to_path_buf(),
                    line: line_no,
                    message: format!("invalid section header {line:?}"),
                }),
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            errors.push(ParseError {
                file: file.to_path_buf(),
                line: line_no,
                message: format!("{line:?} is neither a [section] nor a Key=Value assignment"),
            });
            continue;
        };
        let Some(sec) = &section else {
            errors.push(ParseError {
                file: file.to_path_buf(),
                line: line_no,
                message: format!("assignment {:?} outside of any [section]", key.trim()),
            });
            continue;
        };
        out.push(Assignment {
            section: sec.clone(),
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
            file: file.to_path_buf(),
            line: line_no,
        });
    }
    (out, errors)
}

/// A value split into words as systemd splits `Environment=` (systemd.exec(5)): blanks separate
/// words, double and single quotes group and are removed, C escapes are undone.
pub fn split_words(value: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(unescape(&mut chars)?),
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, None) if c.is_ascii_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("unterminated {q} quote in {value:?}"));
        }
        words.push(word);
    }
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    let c = chars.next().ok_or("a backslash at the end of the value")?;
    Ok(match c {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        's' => ' ',
        'x' => {
            let hex: String = (0..2).filter_map(|_| chars.next()).collect();
            u8::from_str_radix(&hex, 16).map(char::from).map_err(|_| format!("invalid escape \\x{hex}"))?
        }
        other => other,
    })
}

/// Who runs a directory's units: the system (root), or a user's systemd (rootless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitUser {
    /// User name (`%u`).
    pub name: String,
    /// uid (`%U`).
    pub uid: u32,
    /// Home (`%h`).
    pub home: String,
}

/// A directory of quadlet units to read.
pub struct QuadletSource<'a> {
    /// The directory.
    pub dir: PathBuf,
    /// Its entries' names.
    pub names: Vec<String>,
    /// Who runs the units (root for the system's directories).
    pub user: UnitUser,
    /// Whether the units run rootless (a user's directory).
    pub rootless: bool,
    /// Reads a file (of the host).
    pub read: ReadFn<'a>,
    /// Lists a directory (of the host): the names of its entries.
    pub list: &'a dyn Fn(&Path) -> Option<Vec<String>>,
}

/// The `.container` units of a directory as one stack ([`StackKind::Quadlet`]), `None` when it
/// has none.
pub fn load_dir(src: &QuadletSource) -> Option<ComposeStack> {
    let mut units: Vec<&String> = src.names.iter().filter(|n| n.ends_with(".container")).collect();
    if units.is_empty() {
        return None;
    }
    units.sort();
    let name = if src.rootless { format!("quadlet-{}", src.user.name) } else { "quadlet".to_owned() };
    let mut stack = ComposeStack::new(name, src.dir.display().to_string());
    stack.kind = StackKind::Quadlet;
    stack.engine = Some(Engine::Podman);
    stack.found_by = FoundBy::QuadletDir;
    stack.rootless = src.rootless;
    stack.owner = Some(src.user.name.clone());
    for unit in units {
        let file = src.dir.join(unit);
        let mut assignments = Vec::new();
        let mut files = vec![file.clone()];
        let dropin_dir = src.dir.join(format!("{unit}.d"));
        if let Some(mut confs) = (src.list)(&dropin_dir) {
            confs.retain(|n| n.ends_with(".conf"));
            confs.sort();
            files.extend(confs.iter().map(|c| dropin_dir.join(c)));
        }
        for f in &files {
            match (src.read)(f) {
                Ok(text) => {
                    let (a, errors) = parse_unit(&text, f);
                    assignments.extend(a);
                    stack.problems.extend(errors);
                }
                Err(e) => {
                    stack.problems.push(ParseError { file: f.clone(), line: 0, message: format!("cannot read: {e}") })
                }
            }
            stack.files.push(f.display().to_string());
        }
        let svc = container(unit, &file, &assignments, src, &mut stack.problems);
        stack.services.push(svc);
    }
    Some(stack)
}

/// The name of the service quadlet generates for `unit`, without `.service`: the file name
/// without its last extension, unless its only dot is the first character (as podman's
/// quadlet names it: `app.container.container` runs as `app.container.service`, `.container`
/// as `.container.service`; found by the quadlet fuzz target, tests/fuzz-regressions/quadlet/).
fn service_stem(unit: &str) -> &str {
    match unit.rfind('.') {
        Some(dot) if dot > 0 => &unit[..dot],
        _ => unit,
    }
}

/// `%` specifiers systemd expands that capture can know; the others stay as written.
fn expand(value: &str, unit: &str, user: &UnitUser) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    let stem = service_stem(unit);
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(&user.home),
            Some('u') => out.push_str(&user.name),
            Some('U') => out.push_str(&user.uid.to_string()),
            // The generated unit is NAME.service.
            Some('n') => out.push_str(&format!("{stem}.service")),
            Some('N') | Some('p') => out.push_str(stem),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn container(
    unit: &str,
    file: &Path,
    all: &[Assignment],
    src: &QuadletSource,
    problems: &mut Vec<ParseError>,
) -> ComposeService {
    let stem = service_stem(unit);
    let header_line = all.iter().find(|a| a.section == "Container" && a.file == file).map(|a| a.line).unwrap_or(1);
    let mut svc = ComposeService {
        name: stem.to_owned(),
        file: file.display().to_string(),
        line: header_line,
        ..ComposeService::default()
    };
    let ours = all.iter().filter(|a| a.section == "Container");
    let value = |a: &Assignment| expand(&a.value, unit, &src.user);
    let problem = |a: &Assignment, message: String| ParseError { file: a.file.clone(), line: a.line, message };
    let (mut user, mut group) = (None, None);
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut env_files = Vec::new();
    for a in ours {
        let v = value(a);
        match a.key.as_str() {
            "Image" => svc.image = Some(v),
            "User" => user = Some(v),
            "Group" => group = Some((v, a)),
            "GroupAdd" if !v.is_empty() => svc.group_add.push(v),
            "UserNS" => svc.userns = Some(v),
            "Annotation" => match split_words(&v) {
                Ok(words) => {
                    for w in words {
                        if let Some((_, val)) = w.split_once('=').filter(|(k, _)| *k == KEEP_ORIGINAL_GROUPS_ANNOTATION)
                        {
                            svc.keep_groups = val == "1" || val.eq_ignore_ascii_case("true");
                        }
                    }
                }
                Err(e) => problems.push(problem(a, format!("Annotation=: {e}"))),
            },
            "AddDevice" => {
                let spec = v.strip_prefix('-').unwrap_or(&v);
                let mut parts = spec.splitn(3, ':');
                let source = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().filter(|t| !t.is_empty()).unwrap_or(&source).to_owned();
                let permissions = parts.next().filter(|p| !p.is_empty()).unwrap_or("rwm").to_owned();
                if source.is_empty() {
                    problems.push(problem(a, "AddDevice= names no device".into()));
                } else {
                    svc.devices.push(DeviceMapping { source, target, permissions });
                }
            }
            "Environment" => match split_words(&v) {
                Ok(words) => {
                    for w in words {
                        match w.split_once('=') {
                            Some((k, val)) => {
                                env.insert(k.to_owned(), val.to_owned());
                            }
                            None => problems.push(problem(a, format!("Environment=: {w:?} is not NAME=VALUE"))),
                        }
                    }
                }
                Err(e) => problems.push(problem(a, format!("Environment=: {e}"))),
            },
            "EnvironmentFile" => env_files.push((a, v)),
            "Volume" => match volume(&v, &src.dir) {
                Ok(m) => svc.volumes.push(m),
                Err(e) => problems.push(problem(a, format!("Volume=: {e}"))),
            },
            _ => {}
        }
    }
    // Environment= wins over EnvironmentFile=, as --env over --env-file in podman run.
    let mut from_files: BTreeMap<String, String> = BTreeMap::new();
    for (a, f) in env_files {
        let path = if Path::new(&f).is_absolute() { PathBuf::from(&f) } else { src.dir.join(&f) };
        match (src.read)(&path) {
            Ok(text) => {
                let parsed = dotenv::parse(&text, &path, &no_env);
                problems.extend(parsed.errors);
                from_files.extend(parsed.entries.into_iter().map(|(_, e)| (e.name, e.value)));
            }
            Err(e) => problems.push(problem(a, format!("EnvironmentFile={f}: cannot read: {e}"))),
        }
    }
    from_files.extend(env);
    svc.environment =
        from_files.into_iter().filter(|(k, _)| CAPTURED_ENV.contains(&k.as_str())).map(|(k, v)| (k, Some(v))).collect();
    svc.user = match (user, group) {
        (Some(u), Some((g, _))) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u),
        (None, Some((_, a))) => {
            problems.push(problem(a, "Group= without User=: quadlet refuses the unit".into()));
            None
        }
        (None, None) => None,
    };
    svc
}

/// One `Volume=`, as quadlet turns it into `podman run -v`.
fn volume(spec: &str, unit_dir: &Path) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] if t.starts_with('/') => (Some(*s), *t, ""),
        [t, o] => (None, *t, *o),
        [s, t, o] => (Some(*s), *t, *o),
        _ => return Err(format!("{spec:?} has more than three fields")),
    };
    if target.is_empty() || !target.starts_with('/') {
        return Err(format!("{spec:?}: the target {target:?} is not an absolute path"));
    }
    let read_only = options.split(',').any(|o| o == "ro");
    let (kind, source, host_path) = match source {
        None => (VolumeKind::Volume, None, None),
        Some("") => return Err(format!("{spec:?} has an empty source")),
        Some(s) if s.starts_with('/') => {
            let p = clean_path(Path::new(s)).display().to_string();
            (VolumeKind::Bind, Some(p.clone()), Some(p))
        }
        Some(s) if s.starts_with("./") || s.starts_with("../") || s == "." || s == ".." => {
            let p = clean_path(&unit_dir.join(s)).display().to_string();
            (VolumeKind::Bind, Some(p.clone()), Some(p))
        }
        Some(s) => match s.strip_suffix(".volume") {
            // A quadlet volume unit: Podman names it systemd-NAME unless VolumeName= says otherwise.
            Some(stem) => (VolumeKind::Volume, Some(format!("systemd-{stem}")), None),
            None => (VolumeKind::Volume, Some(s.to_owned()), None),
        },
    };
    Ok(VolumeMount { kind, source, target: target.to_owned(), read_only, host_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_comments_and_errors_carry_file_and_line() {
        let text = "[Container]\nEnvironment=A=1 \\\n# skipped\n  B=2\nbogus line\n[Bad\nImage=x\n";
        let (a, e) = parse_unit(text, Path::new("/q/x.container"));
        assert_eq!(split_words(&a[0].value).unwrap(), vec!["A=1", "B=2"]);
        assert_eq!(a[0].line, 2);
        assert_eq!(a[1].key, "Image");
        let msgs: Vec<String> = e.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "/q/x.container:5: \"bogus line\" is neither a [section] nor a Key=Value assignment",
                "/q/x.container:6: invalid section header \"[Bad\""
            ]
        );
        let (_, e) = parse_unit("Image=x\n", Path::new("/q/y.container"));
        assert_eq!(e[0].to_string(), "/q/y.container:1: assignment \"Image\" outside of any [section]");
    }

    #[test]
    fn words_split_as_systemd_splits_environment() {
        assert_eq!(
            split_words(r#"A=1 "B=two words" 'C=x"y' D=\x41\s"#).unwrap(),
            vec!["A=1", "B=two words", "C=x\"y", "D=A "]
        );
        assert!(split_words("\"A=1").is_err());
    }

    #[test]
    fn services_are_named_as_quadlet_names_them() {
        let names: Vec<String> = ["app.container.container", ".container", "plex.container"].map(String::from).into();
        let read = |_: &Path| Ok("[Container]\nImage=docker.io/x\n".to_owned());
        let list = |_: &Path| None;
        let src = QuadletSource {
            dir: PathBuf::from("/etc/containers/systemd"),
            names,
            user: UnitUser { name: "root".into(), uid: 0, home: "/root".into() },
            rootless: false,
            read: &read,
            list: &list,
        };
        let stack = load_dir(&src).unwrap();
        let got: Vec<(&str, &str)> = stack.services.iter().map(|s| (s.name.as_str(), s.file.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (".container", "/etc/containers/systemd/.container"),
                ("app.container", "/etc/containers/systemd/app.container.container"),
                ("plex", "/etc/containers/systemd/plex.container"),
            ]
        );
        let u = UnitUser { name: "root".into(), uid: 0, home: "/root".into() };
        assert_eq!(expand("%N %n", "app.container.container", &u), "app.container app.container.service");
        assert_eq!(expand("%N", ".container", &u), ".container");
    }

    #[test]
    fn specifiers_that_capture_knows_are_expanded() {
        let u = UnitUser { name: "palav".into(), uid: 1000, home: "/home/palav".into() };
        assert_eq!(
            expand("%h/x %u %U %N %n 100%% %t", "plex.container", &u),
            "/home/palav/x palav 1000 plex plex.service 100% %t"
        );
    }
}
