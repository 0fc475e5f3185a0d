//! The library's layers depend in one direction only (docs/architecture.md): `model` at the
//! bottom names nothing else of the crate, the pure parsers in `sources` name only `model`, and
//! the import graph between the top-level modules has no cycle. This test reads the sources, so
//! a `use crate::host::...` (or a doc link to it) added under `src/model/` fails it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to: `src/model/fs.rs` -> `model`,
/// `src/nixos.rs` -> `nixos`; `None` for the crate root.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
    (name != "lib").then_some(name)
}

/// The top-level modules `text` names as `crate::<module>` (in code or in doc links).
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Module -> the other top-level modules its files name, with the files that name each.
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), src().display());
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&file) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = g.entry(module.clone()).or_default();
        for named in named_modules(&text) {
            if named != module {
                let shown = file.strip_prefix(src()).unwrap().display().to_string();
                edges.entry(named).or_default().insert(shown);
            }
        }
    }
    g
}

#[test]
fn model_names_no_other_layer_and_sources_only_model() {
    let g = graph();
    let allowed: [(&str, &[&str]); 2] = [("model", &[]), ("sources", &["model"])];
    let mut wrong = Vec::new();
    for (module, ok) in allowed {
        for (named, files) in g.get(module).unwrap_or_else(|| panic!("no module {module}")) {
            if !ok.contains(&named.as_str()) {
                wrong.push(format!("{module} names crate::{named} in {files:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken (docs/architecture.md):\n{}", wrong.join("\n"));
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    // Depth-first search for a back edge; the path to it is the cycle.
    fn visit<'a>(
        g: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        node: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| *n == node) {
            return Some(path[i..].iter().chain([&node]).map(|s| s.to_string()).collect());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in g.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    for node in g.keys() {
        if let Some(cycle) = visit(&g, node, &mut Vec::new(), &mut done) {
            panic!("the modules depend on each other in a cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_a_violation() {
    // The scan itself must be able to fail: a `crate::host` mention is found.
    assert!(named_modules("use crate::host::FileStat;\n/// [`crate::check::run`]").contains("host"));
    assert!(named_modules("/// [`crate::check::run`]").contains("check"));
}
