//! One service's fields, as `spec.md` defines them and reduced to what a host move needs: image,
//! `user:`, `group_add:`, `environment:` over `env_file:`, devices, GPU reservations, volumes and
//! their host paths. Apart from the loader: these read one mapping and know nothing of files
//! beyond the service's own `env_file:`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::yaml::{Node, Yaml};
use super::{Ctx, clean_join, dotenv};
use crate::model::compose::{
    AllMarker, CAPTURED_ENV, ComposeService, DeviceCount, DeviceMapping, DeviceReservation, KEEP_GROUPS,
    KEEP_ORIGINAL_GROUPS_ANNOTATION, VolumeKind, VolumeMount,
};
use crate::model::text::ParseError;

/// A host path as Compose resolves a bind source: `~` -> home, relative -> project directory.
fn host_path(ctx: &Ctx, src: &str) -> String {
    let p = if src == "~" {
        ctx.home.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("~"))
    } else if let Some(rest) = src.strip_prefix("~/") {
        match ctx.home {
            Some(h) => clean_join(h, rest),
            None => PathBuf::from(src),
        }
    } else {
        clean_join(ctx.project_dir, src)
    };
    p.display().to_string()
}

pub(super) fn string_list(ctx: &Ctx, node: &Node, what: &str, problems: &mut Vec<ParseError>) -> Vec<String> {
    match &node.value {
        Yaml::Null => Vec::new(),
        Yaml::Seq(items) => items
            .iter()
            .filter_map(|i| {
                let t = i.scalar_text();
                if t.is_none() {
                    ctx.problem(problems, i.line, format!("{what}: expected a string, found {}", i.kind()));
                }
                t
            })
            .collect(),
        _ => match node.scalar_text() {
            Some(t) => vec![t],
            None => {
                ctx.problem(problems, node.line, format!("{what}: expected a string or a list, found {}", node.kind()));
                Vec::new()
            }
        },
    }
}

/// Top-level `volumes:` declared with the local driver's bind options: name -> host directory.
pub(super) fn named_volume_paths(
    ctx: &Ctx,
    node: Option<&Node>,
    problems: &mut Vec<ParseError>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(node) = node else { return out };
    let entries = match &node.value {
        Yaml::Map(e) => e,
        Yaml::Null => return out,
        _ => {
            ctx.problem(problems, node.line, format!("volumes: must be a mapping, found {}", node.kind()));
            return out;
        }
    };
    for (name, v) in entries {
        let Some(opts) = v.get("driver_opts") else { continue };
        let o = opts.get("o").and_then(Node::scalar_text).unwrap_or_default();
        let device = opts.get("device").and_then(Node::scalar_text);
        let driver = v.get("driver").and_then(Node::scalar_text).unwrap_or_else(|| "local".into());
        if driver == "local" && o.split(',').any(|x| x.trim() == "bind") {
            if let Some(d) = device {
                out.insert(name.clone(), host_path(ctx, &d));
            }
        }
    }
    out
}

pub(super) fn service(
    ctx: &Ctx,
    name: &str,
    node: &Node,
    named_volumes: &BTreeMap<String, String>,
    problems: &mut Vec<ParseError>,
) -> ComposeService {
    let mut svc = ComposeService {
        name: name.to_owned(),
        file: ctx.file.display().to_string(),
        line: node.line,
        ..ComposeService::default()
    };
    match &node.value {
        Yaml::Map(_) => {}
        Yaml::Null => return svc,
        _ => {
            ctx.problem(problems, node.line, format!("services.{name}: must be a mapping, found {}", node.kind()));
            return svc;
        }
    }
    let scalar = |key: &str, problems: &mut Vec<ParseError>| -> Option<String> {
        let n = node.get(key)?;
        if matches!(n.value, Yaml::Null) {
            return None;
        }
        let t = n.scalar_text();
        if t.is_none() {
            ctx.problem(problems, n.line, format!("services.{name}.{key}: expected a string, found {}", n.kind()));
        }
        t
    };
    svc.image = scalar("image", problems);
    svc.user = scalar("user", problems);
    svc.runtime = scalar("runtime", problems);
    svc.userns = scalar("userns_mode", problems);
    if let Some(p) = node.get("profiles") {
        svc.profiles = string_list(ctx, p, &format!("services.{name}.profiles"), problems);
    }
    if let Some(g) = node.get("group_add") {
        svc.group_add = string_list(ctx, g, &format!("services.{name}.group_add"), problems);
    }
    svc.keep_groups = svc.group_add.iter().any(|g| g == KEEP_GROUPS)
        || node.get("annotations").is_some_and(|a| keeps_original_groups(ctx, name, a, problems));
    svc.environment = environment(ctx, name, node, problems);
    if let Some(d) = node.get("devices") {
        svc.devices = devices(ctx, name, d, problems);
    }
    if let Some(r) = node.get("deploy").and_then(|d| d.get("resources")).and_then(|r| r.get("reservations")) {
        if let Some(d) = r.get("devices") {
            svc.device_reservations =
                reservations(ctx, &format!("services.{name}.deploy.resources.reservations.devices"), d, problems);
        }
    }
    if let Some(g) = node.get("gpus") {
        svc.gpus = match &g.value {
            Yaml::Str(s) if s == "all" => {
                vec![DeviceReservation { count: Some(DeviceCount::All(AllMarker::All)), ..Default::default() }]
            }
            _ => reservations(ctx, &format!("services.{name}.gpus"), g, problems),
        };
    }
    if let Some(v) = node.get("volumes") {
        svc.volumes = volumes(ctx, name, v, named_volumes, problems);
    }
    svc
}

/// Whether `annotations:` (a mapping or a `key=value` list) sets
/// `run.oci.keep_original_groups` to `1`, as `podman run --group-add keep-groups` does.
fn keeps_original_groups(ctx: &Ctx, name: &str, node: &Node, problems: &mut Vec<ParseError>) -> bool {
    let is_on = |v: &str| v.trim() == "1";
    match &node.value {
        Yaml::Map(entries) => entries
            .iter()
            .any(|(k, v)| k == KEEP_ORIGINAL_GROUPS_ANNOTATION && v.scalar_text().is_some_and(|v| is_on(&v))),
        Yaml::Seq(_) => string_list(ctx, node, &format!("services.{name}.annotations"), problems)
            .iter()
            .any(|a| a.split_once('=').is_some_and(|(k, v)| k == KEEP_ORIGINAL_GROUPS_ANNOTATION && is_on(v))),
        Yaml::Null => false,
        _ => {
            ctx.problem(
                problems,
                node.line,
                format!("services.{name}.annotations: expected a mapping or a list, found {}", node.kind()),
            );
            false
        }
    }
}

/// `environment:` over `env_file:`, reduced to [`CAPTURED_ENV`].
fn environment(ctx: &Ctx, name: &str, node: &Node, problems: &mut Vec<ParseError>) -> BTreeMap<String, Option<String>> {
    let mut env: BTreeMap<String, Option<String>> = BTreeMap::new();
    if let Some(ef) = node.get("env_file") {
        let entries: Vec<(String, bool)> = match &ef.value {
            Yaml::Seq(items) => items
                .iter()
                .filter_map(|i| match &i.value {
                    Yaml::Map(_) => {
                        let path = i.get("path").and_then(Node::scalar_text)?;
                        let required = !matches!(i.get("required").map(|r| &r.value), Some(Yaml::Bool(false)));
                        Some((path, required))
                    }
                    _ => i.scalar_text().map(|p| (p, true)),
                })
                .collect(),
            _ => ef.scalar_text().map(|p| vec![(p, true)]).unwrap_or_default(),
        };
        for (path, required) in entries {
            let p = clean_join(ctx.project_dir, &path);
            match (ctx.read)(&p) {
                Ok(text) => {
                    let parsed = dotenv::parse(&text, &p, ctx.lookup);
                    problems.extend(parsed.errors);
                    for (_, v) in parsed.entries {
                        env.insert(v.name, Some(v.value));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {}
                Err(e) => ctx.problem(problems, ef.line, format!("services.{name}.env_file: {}: {e}", p.display())),
            }
        }
    }
    if let Some(e) = node.get("environment") {
        match &e.value {
            Yaml::Map(entries) => {
                for (k, v) in entries {
                    let value = match &v.value {
                        Yaml::Null => (ctx.lookup)(k),
                        _ => v.scalar_text(),
                    };
                    env.insert(k.clone(), value);
                }
            }
            Yaml::Seq(items) => {
                for i in items {
                    let Some(t) = i.scalar_text() else {
                        ctx.problem(
                            problems,
                            i.line,
                            format!("services.{name}.environment: expected NAME=value, found {}", i.kind()),
                        );
                        continue;
                    };
                    match t.split_once('=') {
                        Some((k, v)) => env.insert(k.to_owned(), Some(v.to_owned())),
                        None => env.insert(t.clone(), (ctx.lookup)(&t)),
                    };
                }
            }
            Yaml::Null => {}
            _ => ctx.problem(
                problems,
                e.line,
                format!("services.{name}.environment: expected a mapping or a list, found {}", e.kind()),
            ),
        }
    }
    env.retain(|k, _| CAPTURED_ENV.contains(&k.as_str()));
    env
}

fn devices(ctx: &Ctx, name: &str, node: &Node, problems: &mut Vec<ParseError>) -> Vec<DeviceMapping> {
    let Yaml::Seq(items) = &node.value else {
        if !matches!(node.value, Yaml::Null) {
            ctx.problem(
                problems,
                node.line,
                format!("services.{name}.devices: expected a list, found {}", node.kind()),
            );
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        match &i.value {
            Yaml::Map(_) => {
                let get = |k: &str| i.get(k).and_then(Node::scalar_text);
                match get("source") {
                    Some(source) => out.push(DeviceMapping {
                        target: get("target").unwrap_or_else(|| source.clone()),
                        permissions: get("permissions").unwrap_or_else(|| "rwm".into()),
                        source,
                    }),
                    None => ctx.problem(problems, i.line, format!("services.{name}.devices: an entry needs a source")),
                }
            }
            _ => match i.scalar_text() {
                Some(s) => out.push(parse_device(&s)),
                None => ctx.problem(
                    problems,
                    i.line,
                    format!("services.{name}.devices: expected a string or a mapping, found {}", i.kind()),
                ),
            },
        }
    }
    out
}

/// `src`, `src:dst`, `src:perms`, `src:dst:perms`; CDI names (`nvidia.com/gpu=all`) stay whole.
pub(super) fn parse_device(s: &str) -> DeviceMapping {
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, permissions) = match parts.as_slice() {
        [src, dst, perms] => (*src, *dst, *perms),
        [src, p] if is_perms(p) => (*src, *src, *p),
        [src, dst] => (*src, *dst, "rwm"),
        _ => (s, s, "rwm"),
    };
    DeviceMapping { source: source.to_owned(), target: target.to_owned(), permissions: permissions.to_owned() }
}

fn reservations(ctx: &Ctx, what: &str, node: &Node, problems: &mut Vec<ParseError>) -> Vec<DeviceReservation> {
    let Yaml::Seq(items) = &node.value else {
        ctx.problem(problems, node.line, format!("{what}: expected a list, found {}", node.kind()));
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        if !matches!(i.value, Yaml::Map(_)) {
            ctx.problem(problems, i.line, format!("{what}: expected a mapping, found {}", i.kind()));
            continue;
        }
        let count = i.get("count").and_then(|c| match &c.value {
            Yaml::Int(n) if *n < 0 => Some(DeviceCount::All(AllMarker::All)),
            Yaml::Int(n) => Some(DeviceCount::Count(*n as u64)),
            Yaml::Str(s) if s == "all" => Some(DeviceCount::All(AllMarker::All)),
            Yaml::Str(s) => match s.parse::<u64>() {
                Ok(n) => Some(DeviceCount::Count(n)),
                Err(_) => {
                    ctx.problem(problems, c.line, format!("{what}: count {s:?} is neither a number nor \"all\""));
                    None
                }
            },
            _ => None,
        });
        let list = |k: &str, problems: &mut Vec<ParseError>| {
            i.get(k).map(|n| string_list(ctx, n, &format!("{what}.{k}"), problems)).unwrap_or_default()
        };
        out.push(DeviceReservation {
            driver: i.get("driver").and_then(Node::scalar_text),
            count,
            device_ids: list("device_ids", problems),
            capabilities: list("capabilities", problems),
        });
    }
    out
}

fn is_bind_source(s: &str) -> bool {
    s.starts_with('.') || s.starts_with('/') || s.starts_with('~')
}

fn volumes(
    ctx: &Ctx,
    name: &str,
    node: &Node,
    named: &BTreeMap<String, String>,
    problems: &mut Vec<ParseError>,
) -> Vec<VolumeMount> {
    let Yaml::Seq(items) = &node.value else {
        if !matches!(node.value, Yaml::Null) {
            ctx.problem(
                problems,
                node.line,
                format!("services.{name}.volumes: expected a list, found {}", node.kind()),
            );
        }
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in items {
        let m = match &i.value {
            Yaml::Map(_) => {
                let get = |k: &str| i.get(k).and_then(Node::scalar_text);
                let Some(target) = get("target") else {
                    ctx.problem(problems, i.line, format!("services.{name}.volumes: an entry needs a target"));
                    continue;
                };
                let kind = match get("type").as_deref() {
                    Some("bind") => VolumeKind::Bind,
                    Some("volume") | None => VolumeKind::Volume,
                    Some("tmpfs") => VolumeKind::Tmpfs,
                    Some(_) => VolumeKind::Other,
                };
                let read_only = matches!(i.get("read_only").map(|n| &n.value), Some(Yaml::Bool(true)))
                    || get("read_only").as_deref() == Some("true");
                let source = get("source");
                mount(ctx, kind, source, target, read_only, named)
            }
            _ => match i.scalar_text().map(|s| split_volume_spec(&s)) {
                Some(Ok(spec)) => short_volume(ctx, &spec, named),
                // Compose refuses the whole project here; the rest is still captured.
                Some(Err(e)) => {
                    ctx.problem(
                        problems,
                        i.line,
                        format!("services.{name}.volumes: {e} (Compose refuses the project)"),
                    );
                    continue;
                }
                None => {
                    ctx.problem(
                        problems,
                        i.line,
                        format!("services.{name}.volumes: expected a string or a mapping, found {}", i.kind()),
                    );
                    continue;
                }
            },
        };
        out.push(m);
    }
    out
}

fn mount(
    ctx: &Ctx,
    kind: VolumeKind,
    source: Option<String>,
    target: String,
    read_only: bool,
    named: &BTreeMap<String, String>,
) -> VolumeMount {
    let (source, host_path) = match kind {
        VolumeKind::Bind => {
            let p = source.map(|s| host_path(ctx, &s));
            (p.clone(), p)
        }
        VolumeKind::Volume => {
            let hp = source.as_ref().and_then(|s| named.get(s).cloned());
            (source, hp)
        }
        _ => (source, None),
    };
    VolumeMount { kind, source, target, read_only, host_path }
}

/// `[SOURCE:]TARGET[:MODE]`, as `spec.md` "Short syntax" defines it.
fn short_volume(ctx: &Ctx, spec: &VolumeSpec, named: &BTreeMap<String, String>) -> VolumeMount {
    let read_only = spec.mode.split(',').any(|m| m == "ro");
    let kind = match spec.source.as_deref() {
        Some(src) if is_bind_source(src) => VolumeKind::Bind,
        _ => VolumeKind::Volume,
    };
    mount(ctx, kind, spec.source.clone(), spec.target.clone(), read_only, named)
}

/// The parts of a short volume spec.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct VolumeSpec {
    pub source: Option<String>,
    pub target: String,
    pub mode: String,
}

/// Splits a short volume spec as Compose does (compose-go `format.ParseVolume`): one or two
/// characters are a target; otherwise sections are separated by `:`, a single letter before the
/// first `:` is a Windows drive and stays with its path, and an empty section or a fourth one
/// makes Compose refuse the project (`invalid spec: :/data: empty section between colons`,
/// what an unset `$DATADIR` in `$DATADIR:/data` leaves).
pub(super) fn split_volume_spec(s: &str) -> Result<VolumeSpec, String> {
    let chars: Vec<char> = s.chars().collect();
    if s.is_empty() {
        return Err("invalid empty volume spec".into());
    }
    if chars.len() <= 2 {
        return Ok(VolumeSpec { source: None, target: s.to_owned(), mode: String::new() });
    }
    let mut sections: Vec<String> = Vec::new();
    let mut buf = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let windows_drive = c == ':' && sections.is_empty() && i == 1 && chars[0].is_ascii_alphabetic();
        if c == ':' && !windows_drive {
            sections.push(std::mem::take(&mut buf));
        } else {
            buf.push(c);
        }
    }
    sections.push(buf);
    if sections.iter().any(String::is_empty) {
        return Err(format!("invalid spec: {s}: empty section between colons"));
    }
    let mut it = sections.into_iter();
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(t), None, _, _) => Ok(VolumeSpec { source: None, target: t, mode: String::new() }),
        (Some(src), Some(t), None, _) => Ok(VolumeSpec { source: Some(src), target: t, mode: String::new() }),
        (Some(src), Some(t), Some(m), None) => Ok(VolumeSpec { source: Some(src), target: t, mode: m }),
        _ => Err(format!("invalid spec: {s}: too many colons")),
    }
}
