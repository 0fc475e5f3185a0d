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

/// The cells of a table row: split on `|` outside code spans (`` `a | b` `` is one cell).
fn cells(row: &str) -> usize {
    let (mut n, mut code, mut prev) = (0usize, false, ' ');
    for c in row.trim().chars() {
        match c {
            '`' => code = !code,
            '|' if !code && prev != '\\' => n += 1,
            _ => {}
        }
        prev = c;
    }
    n.saturating_sub(1)
}

/// Every Markdown file of the repository (not under `target/` or hidden directories).
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        // Not through symbolic links: the fixtures' sysfs links loop.
        if e.file_type().unwrap().is_dir() {
            markdown_files(&p, out);
        } else if name.ends_with(".md") {
            out.push(p);
        }
    }
}

/// A table is a run of lines that start with `|`: its second line is the header's separator and
/// every row has the header's number of cells (a blank line or a paragraph inside a table
/// splits it into a headless table that renders as text).
#[test]
fn markdown_tables_have_a_header_and_one_number_of_columns() {
    let mut files = Vec::new();
    markdown_files(&repo(), &mut files);
    files.sort();
    assert!(files.len() > 10, "{files:?}");
    let mut bad = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(repo()).unwrap_or(file).display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        let mut in_code = false;
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim_start().starts_with("```") {
                in_code = !in_code;
            }
            if in_code || !lines[i].trim_start().starts_with('|') {
                i += 1;
                continue;
            }
            let start = i;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                i += 1;
            }
            let table = &lines[start..i];
            let separator = table.get(1).is_some_and(|l| {
                let l = l.trim();
                l.len() > 2 && l.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
            });
            if !separator {
                bad.push(format!("{name}:{}: a table without a header line and separator", start + 1));
                continue;
            }
            let width = cells(table[0]);
            for (k, row) in table.iter().enumerate() {
                if cells(row) != width {
                    bad.push(format!("{name}:{}: {} cells, the header has {width}", start + k + 1, cells(row)));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// `captured_at` in the snapshot docs/migration.md shows (the test sets it, so that the plan's
/// files do not change with the clock).
const MIGRATION_CAPTURED_AT: &str = "2026-11-25T02:10:10Z";

/// One fenced block of docs/migration.md: its language, its lines, and where its content starts.
struct Block {
    lang: String,
    start: usize,
    lines: Vec<String>,
    heading: String,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if line.starts_with('#') {
            heading = line.to_owned();
        }
        if let Some(lang) = line.strip_prefix("```") {
            let mut body = Vec::new();
            for (_, l) in lines.by_ref() {
                if l == "```" {
                    break;
                }
                body.push(l.to_owned());
            }
            out.push(Block { lang: lang.to_owned(), start: i + 1, lines: body, heading: heading.clone() });
        }
    }
    out
}

/// Whether `part` is `whole` with things left out: every key of an object with a part of its
/// value, every element of an array a part of some element, in order; other values equal.
fn is_part(part: &serde_json::Value, whole: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p.iter().all(|(k, v)| w.get(k).is_some_and(|wv| is_part(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            let mut rest = w.iter();
            p.iter().all(|pv| rest.by_ref().any(|wv| is_part(pv, wv)))
        }
        _ => part == whole,
    }
}

/// Runs a command of docs/migration.md in `dir` (which stands for `/tmp`) as a terminal shows
/// it (standard error merged), with the homelab-verify under test first on PATH. Only the
/// commands the page uses, on paths under `dir` (or the built fixtures), are run: this runs as
/// root. `jq` (the edited snapshots) and `nix-instantiate --eval` (the module system's verdict)
/// run in the repository root, as the page says, on the committed fixtures and the files the
/// page wrote under `/tmp`; `../shared/vendor/nixpkgs-lib` is the pinned lib the tests use.
fn run_doc_command(command: &str, dir: &Path) -> Vec<String> {
    let tmp = dir.to_str().unwrap();
    let migration = homelab_test_support::sysroot("migration/oldhost").parent().unwrap().to_str().unwrap().to_owned();
    let lib = homelab_test_support::nix::nixpkgs_lib();
    let cmd = command
        .replace("\"$(cargo fixture migration)\"", &migration)
        .replace("/tmp/", &format!("{tmp}/"))
        .replace("../shared/vendor/nixpkgs-lib", lib.to_str().unwrap());
    let words: Vec<&str> = cmd.split_whitespace().collect();
    assert!(
        matches!(words[0], "homelab-verify" | "cp" | "chown" | "rm" | "jq" | "nix-instantiate"),
        "docs/migration.md: this test runs only homelab-verify, cp, chown, rm, jq and nix-instantiate: {command}"
    );
    if words[0] == "nix-instantiate" {
        assert!(words.contains(&"--eval"), "docs/migration.md: nix-instantiate only evaluates here: {command}");
    }
    // What changes files works below the directory that stands for /tmp (cp reads the built
    // fixtures, jq the committed snapshots); homelab-verify only reads, and its paths inside a
    // sysroot are the host's; nix-instantiate --eval writes nothing.
    for w in words.iter().filter(|w| !matches!(words[0], "homelab-verify" | "nix-instantiate") && w.starts_with('/')) {
        assert!(
            w.starts_with(tmp) || (words[0] == "cp" && w.starts_with(&migration)),
            "docs/migration.md: {w} is outside the directory that stands for /tmp: {command}"
        );
    }
    let in_repo = matches!(words[0], "jq" | "nix-instantiate");
    let bin_dir = homelab_test_support::verify_path().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new("bash")
        // Braces: `a; b` is one command line, and both write to the terminal.
        .args(["-c", &format!("{{ {cmd}; }} 2>&1")])
        .current_dir(if in_repo { repo() } else { dir.to_path_buf() })
        // A Nix without build users (Debian's nix-bin as root) warns that nixbld is missing;
        // evaluating needs none, and the page shows what Nix prints where it is set up.
        .env("NIX_CONFIG", "build-users-group =")
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace(tmp, "/tmp");
    if words[0] != "homelab-verify" {
        assert!(out.status.success(), "{command}: {text}");
    }
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// docs/migration.md, run: its commands in order print what it shows, the three files `plan`
/// writes are the ones it shows, and its `snapshot.json` excerpt is a part of the real one.
#[test]
fn the_migration_walkthrough_prints_and_writes_what_the_docs_show() {
    homelab_test_support::require_root("docs/migration.md chowns the copied fixtures to 1000:110");
    let file = repo().join("docs/migration.md");
    let text = std::fs::read_to_string(&file).unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let rewrite = std::env::var_os("HOMELAB_PROBE_REWRITE_DOCS").is_some();
    let mut replacements: Vec<(usize, usize, Vec<String>)> = Vec::new();
    let mut problems = Vec::new();
    let mut commands = 0;
    let mut files = 0;
    let all = blocks(&text);
    for b in &all {
        let at = format!("docs/migration.md:{}", b.start);
        if b.lines.first().is_some_and(|l| l.starts_with("$ ")) {
            let mut shown: Vec<String> = Vec::new();
            let mut printed: Vec<String> = Vec::new();
            let mut i = 0;
            while i < b.lines.len() {
                let command = b.lines[i].trim_start_matches("$ ").to_owned();
                shown.push(b.lines[i].clone());
                printed.push(b.lines[i].clone());
                i += 1;
                while i < b.lines.len() && !b.lines[i].starts_with("$ ") {
                    shown.push(b.lines[i].clone());
                    i += 1;
                }
                printed.extend(run_doc_command(&command, dir));
                commands += 1;
                if command.starts_with("homelab-verify capture") {
                    // The clock is the one thing that differs between runs.
                    let snap = dir.join("snapshot.json");
                    let mut v: serde_json::Value =
                        serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap();
                    v["captured_at"] = MIGRATION_CAPTURED_AT.into();
                    std::fs::write(&snap, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
                }
            }
            if shown != printed {
                problems.push(format!(
                    "{at}: the block shows\n{}\n--- it printed ---\n{}",
                    shown.join("\n"),
                    printed.join("\n")
                ));
                replacements.push((b.start, b.lines.len(), printed));
            }
        } else if let Some(name) = b.heading.strip_prefix("### `plan/").and_then(|h| h.strip_suffix('`')) {
            let written = std::fs::read_to_string(dir.join("plan").join(name))
                .unwrap_or_else(|e| panic!("{at}: plan/{name} (the block under {}): {e}", b.heading));
            let written: Vec<String> = written.lines().map(str::to_owned).collect();
            files += 1;
            if written != b.lines {
                problems.push(format!("{at}: plan/{name} differs from what plan wrote:\n{}", written.join("\n")));
                replacements.push((b.start, b.lines.len(), written));
            }
        } else if b.lang == "json" {
            let part: serde_json::Value =
                serde_json::from_str(&b.lines.join("\n")).unwrap_or_else(|e| panic!("{at}: not JSON: {e}"));
            let snap = std::fs::read_to_string(dir.join("snapshot.json")).unwrap_or_else(|e| panic!("{at}: {e}"));
            let whole: serde_json::Value = serde_json::from_str(&snap.replace(dir.to_str().unwrap(), "/tmp")).unwrap();
            if !is_part(&part, &whole) {
                problems
                    .push(format!("{at}: the excerpt is not a part of snapshot.json (rewrite it by hand):\n{whole:#}"));
            }
        }
    }
    assert!(commands >= 9 && files == 3, "found {commands} commands and {files} plan files in docs/migration.md");
    if rewrite && !replacements.is_empty() {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        // From the last block up, so that the earlier ones stay where they are.
        for (start, len, new) in replacements.into_iter().rev() {
            lines.splice(start..start + len, new);
        }
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    }
    assert!(
        problems.is_empty(),
        "docs/migration.md is stale (HOMELAB_PROBE_REWRITE_DOCS=1 rewrites the outputs and files):\n{}",
        problems.join("\n\n")
    );
}
