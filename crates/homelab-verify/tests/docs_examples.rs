//! The fixture examples in the docs run as printed and print what the docs show. Every
//! `$ homelab-verify check --root "$(cargo fixture NAME)" ...` in README.md and docs/*.md is run
//! from the repository root with `$(cargo fixture NAME)` as the alias gives it (the sysroot
//! built from its layers); every line the docs show after it must appear in what it prints, in
//! the same order. A `...` line stands for lines left out; the first line, which names where the
//! sysroot is, is abbreviated in the docs and not compared.
//!
//! Reads README.md and docs/, which the Nix build's source set does not have
//! (nix/sandbox-tests.txt excludes this binary).

use std::path::{Path, PathBuf};

use homelab_test_support::{repo, sysroot, verify};

const FIXTURE: &str = "\"$(cargo fixture ";

struct Example {
    at: String,
    args: Vec<String>,
    shown: Vec<String>,
}

fn docs() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The arguments of a command line as the docs write it: words split on blanks, and
/// `"$(cargo fixture NAME)"` replaced by that sysroot.
fn args(command: &str, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = command;
    while let Some(start) = rest.find(FIXTURE) {
        out.extend(rest[..start].split_whitespace().map(str::to_owned));
        let tail = &rest[start + FIXTURE.len()..];
        let end = tail.find(")\"").unwrap_or_else(|| panic!("{at}: unterminated \"$(cargo fixture ...)\""));
        out.push(sysroot(tail[..end].trim()).to_str().unwrap().to_owned());
        rest = &tail[end + 2..];
    }
    out.extend(rest.split_whitespace().map(str::to_owned));
    for a in &out {
        assert!(!a.contains(['"', '\'', '$', '`']), "{at}: this test does not read shell quoting: {a}");
    }
    out
}

fn examples(file: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file.strip_prefix(repo()).unwrap_or(file).display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut in_block = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block || !line.starts_with("$ homelab-verify ") || !line.contains(FIXTURE) {
            continue;
        }
        let at = format!("{name}:{i}");
        let mut command = line.trim_start_matches("$ ").to_owned();
        while command.ends_with('\\') {
            command.pop();
            command.push(' ');
            command.push_str(lines[i].trim());
            i += 1;
        }
        let mut shown = Vec::new();
        while i < lines.len() && !lines[i].starts_with("```") && !lines[i].starts_with("$ ") {
            shown.push(lines[i].trim_end().to_owned());
            i += 1;
        }
        let args = args(&command, &at);
        found.push(Example { at, args, shown });
    }
    found
}

#[test]
fn fixture_examples_in_the_docs_print_what_the_docs_show() {
    let all: Vec<Example> = docs().iter().flat_map(|f| examples(f)).collect();
    // README (2), docs/gpu.md (3), docs/mounts.md (1): the test cannot pass by finding none.
    assert!(all.len() >= 6, "found only {} examples", all.len());
    for ex in &all {
        assert_eq!(ex.args[0], "homelab-verify", "{}", ex.at);
        let out = verify().env("NO_COLOR", "1").current_dir(repo()).args(&ex.args[1..]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}: {:?} exited {:?}: {}",
            ex.at,
            ex.args,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Vec<&str> = stdout.lines().map(str::trim_end).collect();
        let mut next = 0;
        for (k, want) in ex.shown.iter().enumerate() {
            if want.is_empty() || want == "..." || (k == 0 && want.starts_with("homelab-verify ")) {
                continue;
            }
            match printed[next..].iter().position(|p| p == want) {
                Some(pos) => next += pos + 1,
                None => panic!(
                    "{}: the docs show a line that `{}` does not print (in this order):\n{want}\n--- it printed ---\n{stdout}",
                    ex.at,
                    ex.args.join(" ")
                ),
            }
        }
    }
}

/// `cargo fixture` in the docs is the alias for the test-support binary that prints
/// `sysroots_dir()/NAME`, which is what [`sysroot`] gives the examples above.
#[test]
fn cargo_fixture_is_the_alias_the_docs_use() {
    let config = std::fs::read_to_string(repo().join(".cargo/config.toml")).unwrap();
    assert!(
        config
            .lines()
            .any(|l| l.trim() == r#"fixture = "run --quiet --package homelab-test-support --bin fixture --""#),
        "{config}"
    );
    assert_eq!(sysroot("nixos-default"), homelab_test_support::sysroots_dir().join("nixos-default"));
}
