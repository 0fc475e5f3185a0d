//! The seed corpora: the fixture files of the repository and the examples of its docs (code
//! blocks of `docs/*.md`, `README.md` and the module documentation under `crates/*/src`), each
//! sorted to the target that reads such a file, and for the baseline, baselines taken of a
//! fixture tree and written from records. Collected fresh on every fuzz run, so that a
//! new fixture is a new seed without a copy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use homelab_probe::sources::compose::COMPOSE_FILE_NAMES;

use crate::files::archive;

/// One seed.
#[derive(Debug, Clone)]
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// A file name for it (from where it came).
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
}

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn with_mode(mode: u8, text: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(text);
    v
}

/// Every file under `dir` (not following symbolic links), sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let Ok(m) = p.symlink_metadata() else { continue };
        if m.is_dir() {
            walk(&p, out);
        } else if m.is_file() {
            out.push(p);
        }
    }
}

/// The seeds for `target` that a fixture file at `path` gives.
fn file_seeds(path: &Path, data: &[u8], push: &mut dyn FnMut(&'static str, Vec<u8>)) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let parent = path.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let under = |dir: &str| path.components().any(|c| c.as_os_str() == dir);
    match name.as_str() {
        "fstab" => push("fstab", data.to_vec()),
        "mountinfo" => push("mountinfo", data.to_vec()),
        "group" => push("group", data.to_vec()),
        "passwd" => push("passwd", data.to_vec()),
        "os-release" => push("os_release", data.to_vec()),
        "homelab-sysroot.toml" => push("sysroot_manifest", data.to_vec()),
        "docker.service" => push("docker", with_mode(1, data)),
        _ => {}
    }
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    if ext == "fstab" {
        push("fstab", data.to_vec());
    } else if ext == "mountinfo" {
        push("mountinfo", data.to_vec());
    } else if ext == "toml" && parent == "expect" {
        push("expectations", data.to_vec());
    } else if name == ".env" || ext == "env" {
        push("compose_env", data.to_vec());
    } else if under("cdi") && ext == "json" {
        push("cdi", with_mode(0, data));
    } else if under("cdi") && (ext == "yaml" || ext == "yml") {
        push("cdi", with_mode(1, data));
    } else if name.ends_with("daemon.json") {
        push("docker", with_mode(0, data));
    } else if parent.ends_with("docker.service.d") && ext == "conf" {
        push("docker", with_mode(1, data));
    } else if under("snapshots") && ext == "json" {
        push("snapshot", data.to_vec());
    }
}

/// A directory holding a compose project, as one compose input.
fn compose_seed(dir: &Path) -> Option<Vec<u8>> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let main = COMPOSE_FILE_NAMES.iter().find(|c| names.iter().any(|n| n == *c))?;
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut others = Vec::new();
    let mut main_text = String::new();
    for f in files {
        let rel = f.strip_prefix(dir).ok()?.to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).ok()?;
        if rel == *main {
            main_text = text;
        } else {
            others.push((rel, text));
        }
    }
    Some(archive(&main_text, &others).into_bytes())
}

/// A directory of quadlet units (with their drop-ins and environment files), as one quadlet
/// input: every file after its `#@` line.
fn quadlet_seed(dir: &Path) -> Option<Vec<u8>> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut others = Vec::new();
    for f in files {
        let rel = f.strip_prefix(dir).ok()?.to_string_lossy().into_owned();
        others.push((rel, std::fs::read_to_string(&f).ok()?));
    }
    Some(archive("", &others).into_bytes())
}

/// The code blocks of a Markdown text (or of the `//!` and `///` lines of a Rust file), with
/// their language.
fn code_blocks(text: &str, rust: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for raw in text.lines() {
        let line = if rust {
            let t = raw.trim_start();
            match t.strip_prefix("//!").or_else(|| t.strip_prefix("///")) {
                Some(rest) => rest.strip_prefix(' ').unwrap_or(rest),
                None => {
                    open = None;
                    continue;
                }
            }
        } else {
            raw
        };
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(lang)) => open = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The seeds a docs code block gives.
fn block_seeds(lang: &str, body: &str, push: &mut dyn FnMut(&'static str, Vec<u8>)) {
    let b = body.as_bytes();
    match lang {
        "toml" if body.contains("[[node]]") => push("sysroot_manifest", b.to_vec()),
        "toml" if body.contains("version") => push("expectations", b.to_vec()),
        "yaml" | "yml" if body.contains("cdiVersion") => push("cdi", with_mode(1, b)),
        "yaml" | "yml" => push("compose", b.to_vec()),
        "json" if body.contains("schema_version") && body.contains("identities") => push("snapshot", b.to_vec()),
        "json" if body.contains("cdiVersion") => push("cdi", with_mode(0, b)),
        "json" if body.contains("runtimes") || body.contains("features") => push("docker", with_mode(0, b)),
        "ini" | "systemd" if body.contains("[Container]") => push("quadlet", b.to_vec()),
        "ini" | "systemd" if body.contains("ExecStart") => push("docker", with_mode(1, b)),
        "fstab" => push("fstab", b.to_vec()),
        "sh" | "bash" | "env" | "dotenv"
            if body.lines().all(|l| l.is_empty() || l.starts_with('#') || l.contains('=')) =>
        {
            push("compose_env", b.to_vec());
        }
        _ => {}
    }
    if body.contains("\"journal\":\"homelab-probe drift fix\"") {
        push("journal", with_mode(0, b));
    }
}

/// Every seed, for every target.
pub fn seeds() -> Vec<Seed> {
    let root = repo();
    let mut out: Vec<Seed> = Vec::new();
    let mut names: BTreeSet<(&'static str, String)> = BTreeSet::new();
    let mut add = |target: &'static str, from: &str, data: Vec<u8>| {
        let base: String =
            from.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        let mut name = base.clone();
        let mut n = 1;
        while !names.insert((target, name.clone())) {
            n += 1;
            name = format!("{base}.{n}");
        }
        out.push(Seed { target, name, data });
    };

    let fixtures = root.join("crates/homelab-probe/tests/fixtures");
    let mut files = Vec::new();
    walk(&fixtures, &mut files);
    let mut compose_dirs = BTreeSet::new();
    let mut quadlet_dirs = BTreeSet::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f).to_string_lossy().into_owned();
        let Ok(data) = std::fs::read(f) else { continue };
        file_seeds(f, &data, &mut |t, d| add(t, &rel, d));
        if f.file_name().is_some_and(|n| COMPOSE_FILE_NAMES.iter().any(|c| n == *c)) {
            compose_dirs.extend(f.parent().map(Path::to_path_buf));
        }
        if f.extension().is_some_and(|e| e == "container") {
            quadlet_dirs.extend(f.parent().map(Path::to_path_buf));
        }
    }
    for d in compose_dirs {
        if let Some(data) = compose_seed(&d) {
            add("compose", &d.strip_prefix(&root).unwrap_or(&d).to_string_lossy(), data);
        }
    }
    for d in quadlet_dirs {
        if let Some(data) = quadlet_seed(&d) {
            add("quadlet", &d.strip_prefix(&root).unwrap_or(&d).to_string_lossy(), data);
        }
    }
    for (name, data) in crate::baseline::seeds(&fixtures.join("quadlet-host")) {
        add("baseline", &name, data);
    }

    let mut docs = vec![root.join("README.md")];
    let mut doc_files = Vec::new();
    walk(&root.join("docs"), &mut doc_files);
    docs.extend(doc_files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")));
    let mut sources = Vec::new();
    walk(&root.join("crates/homelab-probe/src"), &mut sources);
    docs.extend(sources.into_iter().filter(|p| p.extension().is_some_and(|e| e == "rs")));
    for d in docs {
        let Ok(text) = std::fs::read_to_string(&d) else { continue };
        let rel = d.strip_prefix(&root).unwrap_or(&d).to_string_lossy().into_owned();
        let rust = d.extension().is_some_and(|e| e == "rs");
        for (i, (lang, body)) in code_blocks(&text, rust).into_iter().enumerate() {
            block_seeds(&lang, &body, &mut |t, data| add(t, &format!("{rel}.{i}"), data));
        }
    }

    // The structured targets read bytes, not files: a few byte patterns to start from.
    let ramp: Vec<u8> = (0..=255).collect();
    let falling: Vec<u8> = (0..=255).rev().collect();
    add("plan", "ramp", ramp.clone());
    add("plan", "falling", falling.clone());
    add("journal", "round-trip-ramp", with_mode(1, &ramp));
    add("journal", "round-trip-falling", with_mode(1, &falling));
    out
}

/// The dictionary of `target`: its dictionary files (`fuzz/dicts/<name>.dict`) concatenated.
pub fn dictionary(target: &crate::Target) -> std::io::Result<String> {
    let mut out = String::new();
    for d in target.dicts {
        out.push_str(&std::fs::read_to_string(repo().join("fuzz/dicts").join(format!("{d}.dict")))?);
        out.push('\n');
    }
    Ok(out)
}
