//! What the packages install beside the binary, each checked by the program that uses it: the
//! version names git's HEAD, `man -l` renders every page, and bash, zsh and fish load the
//! completions and complete a command with them.
//!
//! Needs git, man-db, bash, zsh and fish (`scripts/setup-debian --test`); a missing tool fails
//! the test. Not run in the Nix build sandbox (nix/sandbox-tests.txt), which has none of them.

use std::process::Output;

use homelab_test_support::{repo, verify};

fn tool(program: &str) -> std::process::Command {
    let mut c = std::process::Command::new(program);
    c.env("HOME", std::env::temp_dir()).env_remove("MANPAGER").env_remove("PAGER");
    c
}

fn output(mut c: std::process::Command) -> Output {
    c.output().unwrap_or_else(|e| panic!("cannot run {c:?} ({e}): run scripts/setup-debian --test"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn git(args: &[&str]) -> String {
    let mut c = tool("git");
    c.current_dir(repo()).env("TZ", "UTC").args(args);
    let out = output(c);
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let hash = git(&["rev-parse", "HEAD"]);
    let date = git(&["log", "-1", "--date=format-local:%Y-%m-%d", "--format=%cd"]);
    let first = format!("homelab-verify {} ({} {date})", env!("CARGO_PKG_VERSION"), &hash[..12]);

    let short = text(&verify().arg("-V").output().unwrap().stdout);
    assert_eq!(short.trim_end(), first);

    let long = text(&verify().arg("--version").output().unwrap().stdout);
    let features: Vec<&str> = [
        (cfg!(feature = "drm"), "drm"),
        (cfg!(feature = "nvml"), "nvml"),
        (cfg!(feature = "udev"), "udev"),
        (cfg!(feature = "vaapi"), "vaapi"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let arch = std::env::consts::ARCH;
    assert_eq!(long, format!("{first}\ntarget: {arch}-unknown-linux-gnu\nfeatures: {}\n", features.join(" ")));
}

/// The commands `--help` lists (without `help`): each gets a man page and a completion.
fn commands() -> Vec<String> {
    let help = text(&verify().arg("--help").output().unwrap().stdout);
    let list = help.split("Commands:\n").nth(1).expect("--help lists commands");
    // A command's line is indented by two blanks; its wrapped description by more.
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn man_renders_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = verify().arg("man").arg("--out").arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mut pages: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    pages.sort();
    let mut want: Vec<String> = commands().iter().map(|c| format!("homelab-verify-{c}.1")).collect();
    want.extend(["homelab-verify.1".to_owned(), "homelab-verify-drift-undo.1".to_owned()]);
    want.extend(["take", "check", "restore", "undo", "show"].map(|c| format!("homelab-verify-baseline-{c}.1")));
    want.sort();
    assert_eq!(pages, want, "a man page for each command, the hidden `man` left out");
    // The pages it printed are the pages it wrote.
    let mut listed: Vec<String> = text(&out.stdout).lines().map(|l| l.rsplit('/').next().unwrap().to_owned()).collect();
    listed.sort();
    assert_eq!(listed, pages);

    for page in &pages {
        let mut c = tool("man");
        c.env("MANWIDTH", "100").arg("--warnings=all").arg("-l").arg(dir.path().join(page));
        let shown = output(c);
        let (stdout, stderr) = (text(&shown.stdout), text(&shown.stderr));
        assert!(shown.status.success() && stderr.is_empty(), "man -l {page}: {stderr}");
        let name = page.trim_end_matches(".1");
        // NAME, then "<page> - <description>" (justified: the blanks vary).
        let after_name = stdout.split("\nNAME\n").nth(1).unwrap_or_default();
        let words: Vec<&str> = after_name.split_whitespace().take(2).collect();
        assert_eq!(words, [name, "-"], "man -l {page} has no NAME section:\n{stdout}");
        assert!(stdout.contains("SYNOPSIS") && stdout.contains("OPTIONS"), "man -l {page}:\n{stdout}");
    }
    let mut c = tool("man");
    c.env("MANWIDTH", "100").arg("-l").arg(dir.path().join("homelab-verify-capture.1"));
    let capture = text(&output(c).stdout);
    assert!(capture.contains("--data-root"), "{capture}");
}

fn completion_script(shell: &str) -> tempfile::NamedTempFile {
    let out = verify().arg("completions").arg(shell).output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty(), "completions {shell}: {}", text(&out.stderr));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &out.stdout).unwrap();
    f
}

fn shell(program: &str, script: &str) -> String {
    let mut c = tool(program);
    c.arg("-c").arg(script);
    let out = output(c);
    assert!(out.status.success(), "{program} -c {script}: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn bash_loads_the_completion_and_completes_commands() {
    let f = completion_script("bash");
    let p = f.path().display();
    let registered = shell("bash", &format!("source {p} && complete -p homelab-verify"));
    assert!(registered.contains(" -F ") && registered.trim_end().ends_with(" homelab-verify"), "{registered}");
    // What bash offers after `homelab-verify ca<TAB>`: the function with bash's arguments.
    let offered = shell(
        "bash",
        &format!(
            "source {p} && COMP_WORDS=(homelab-verify ca) COMP_CWORD=1 COMP_LINE='homelab-verify ca' COMP_POINT=17 && \
             $(complete -p homelab-verify | sed -E 's/.*-F ([^ ]+).*/\\1/') homelab-verify ca homelab-verify && \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ),
    );
    assert_eq!(offered.split_whitespace().collect::<Vec<_>>(), ["capture"]);
}

#[test]
fn zsh_loads_the_completion() {
    let f = completion_script("zsh");
    let compdef = std::fs::read_to_string(f.path()).unwrap();
    assert!(compdef.starts_with("#compdef homelab-verify\n"), "{}", &compdef[..80.min(compdef.len())]);
    let bound = shell(
        "zsh",
        &format!(
            "autoload -U compinit && compinit -u -D && source {} && print -r -- $_comps[homelab-verify]",
            f.path().display()
        ),
    );
    assert_eq!(bound.trim(), "_homelab-verify");
}

#[test]
fn fish_loads_the_completion_and_completes_commands() {
    let f = completion_script("fish");
    let offered =
        shell("fish", &format!("source {} && complete --do-complete 'homelab-verify ca'", f.path().display()));
    let words: Vec<&str> = offered.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(words, ["capture"], "{offered}");
    let commands = shell("fish", &format!("source {} && complete --do-complete 'homelab-verify '", f.path().display()));
    for c in commands_with_help() {
        assert!(
            commands.lines().any(|l| l.split('\t').next() == Some(c.as_str())),
            "fish does not offer {c}:\n{commands}"
        );
    }
}

fn commands_with_help() -> Vec<String> {
    let mut c = commands();
    c.push("help".into());
    c
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = verify().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("invalid value 'tcsh'"), "{}", text(&out.stderr));
}
