//! What a package installs beside the binary, generated from the command line definition so it
//! cannot drift from it: shell completions (`homelab-verify completions SHELL`, clap_complete)
//! and the man pages (`homelab-verify man --out DIR`, clap_mangen; hidden, for packagers and
//! scripts/build-release). Also the version string, with the commit it was built from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

/// `0.1.0 (20bfb7599a45 2026-11-25)`: the version and the commit (build.rs).
pub const VERSION: &str = env!("HOMELAB_VERIFY_VERSION");

/// `--version`: [`VERSION`], the target it was built for and its cargo features (the portable
/// release build reads block device identity without libudev, see docs/release.md).
pub const LONG_VERSION: &str = concat!(
    env!("HOMELAB_VERIFY_VERSION"),
    "\ntarget: ",
    env!("HOMELAB_VERIFY_TARGET"),
    "\nfeatures: ",
    env!("HOMELAB_VERIFY_FEATURES"),
);

/// `homelab-verify completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in. Install the script where your shell looks for it, e.g. bash:
    /// /usr/share/bash-completion/completions/homelab-verify (the .deb does that for bash, zsh
    /// and fish).
    #[arg(value_name = "SHELL")]
    shell: clap_complete::Shell,
}

/// `homelab-verify man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing): homelab-verify.1 and one
    /// homelab-verify-COMMAND.1 per command.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Prints the completion script for `args.shell` to standard output.
pub fn completions(args: &CompletionsArgs, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes one man page per command (hidden ones left out) into `args.out`, and their paths to
/// standard output.
pub fn man(args: &ManArgs, cmd: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut cmd = cmd.disable_help_subcommand(true);
    // Subcommands get their display names (homelab-verify-check) only once built.
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, &args.out, &mut written)?;
    let mut list = String::new();
    for p in &written {
        list.push_str(&format!("{}\n", p.display()));
    }
    write_stdout(list.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn write_pages(cmd: &clap::Command, dir: &std::path::Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    // The commit's date, not today's: the same source gives the same page.
    let page = clap_mangen::Man::new(cmd.clone()).date(env!("HOMELAB_VERIFY_COMMIT_DATE")).manual("homelab-probe");
    let path = page.generate_to(dir).with_context(|| format!("cannot write a man page into {}", dir.display()))?;
    written.push(path);
    Ok(())
}

/// Writes to standard output; a reader that stopped early (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
