//! `capture` and `plan`: the commands of a migration. The library does the work; this writes
//! the files and tells the person what happened.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use homelab_probe::Host;
use homelab_probe::capture::{self, CaptureOptions, ComposeFiles};
use homelab_probe::model::snapshot::Snapshot;
use homelab_probe::plan;

/// `homelab-verify capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Root directory of the host to capture: `/` for this machine, or a sysroot.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// A directory holding compose stacks, one per subdirectory, or itself one stack
    /// (repeatable). Default: `~/docker` and `~/Projects` of every user with uid 1000 or more
    /// and of root.
    #[arg(long = "compose-dir", value_name = "DIR")]
    compose_dirs: Vec<PathBuf>,
    /// A stack's compose file under any name, as `docker compose -f` takes it (repeatable, one
    /// stack each); `FILE:FILE2` for `-f FILE -f FILE2`.
    #[arg(long = "compose-file", value_name = "FILE[:FILE...]")]
    compose_files: Vec<String>,
    /// An env file for the `--compose-file` before it, as `docker compose --env-file` (repeatable;
    /// default: the `.env` of the first file's directory).
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// A data directory whose owner must survive the move, e.g. /mnt/PlexStorage (repeatable).
    #[arg(long = "data-root", value_name = "DIR")]
    data_roots: Vec<PathBuf>,
    /// Time limit in seconds of the ownership walk of each data root (0: no limit).
    #[arg(long = "scan-seconds", value_name = "N", default_value_t = CaptureOptions::DEFAULT_SCAN_LIMIT.as_secs())]
    scan_seconds: u64,
    /// Where to write the snapshot (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
    /// Also record the owner, group and mode of every entry under the data roots in FILE (as
    /// `homelab-verify baseline take`), to check and restore them on the new host with
    /// `baseline check`/`restore` (docs/baseline.md). The snapshot records the file and its
    /// SHA-256, and `plan` has `check` verify it on the new host. The live host only (`--root /`).
    #[arg(long, value_name = "FILE", requires = "data_roots")]
    baseline: Option<PathBuf>,
}

/// `homelab-verify plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The snapshot written by `capture`.
    #[arg(value_name = "SNAPSHOT")]
    snapshot: PathBuf,
    /// Directory to write hardware-parity.nix, homelab-probe.toml and MIGRATION.md into
    /// (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Replace files that already exist there.
    #[arg(long)]
    force: bool,
}

fn refuse_existing(path: &Path, force: bool) -> anyhow::Result<()> {
    if !force && path.exists() {
        bail!("{} exists: not replacing it without --force", path.display());
    }
    Ok(())
}

/// The `--compose-file` projects, each with the `--env-file`s that follow it on the command line.
fn compose_files(args: &CaptureArgs, matches: Option<&clap::ArgMatches>) -> anyhow::Result<Vec<ComposeFiles>> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let absolute = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    let indices =
        |id: &str| -> Vec<usize> { matches.and_then(|m| m.indices_of(id)).map(|i| i.collect()).unwrap_or_default() };
    let file_at = indices("compose_files");
    let mut out: Vec<ComposeFiles> = args
        .compose_files
        .iter()
        .map(|spec| ComposeFiles {
            files: spec.split(':').filter(|f| !f.is_empty()).map(|f| absolute(Path::new(f))).collect(),
            env_files: Vec::new(),
        })
        .collect();
    for (env, at) in args.env_files.iter().zip(indices("env_files")) {
        let Some(owner) = file_at.iter().rposition(|&f| f < at) else {
            bail!("--env-file {}: it belongs to a --compose-file, which must come before it", env.display());
        };
        out[owner].env_files.push(absolute(env));
    }
    if let Some(empty) = args.compose_files.iter().find(|s| s.split(':').all(str::is_empty)) {
        bail!("--compose-file {empty:?} names no file");
    }
    Ok(out)
}

pub fn run_capture(args: &CaptureArgs, matches: Option<&clap::ArgMatches>) -> anyhow::Result<ExitCode> {
    let to_stdout = args.output.as_os_str() == "-";
    if !to_stdout {
        refuse_existing(&args.output, args.force)?;
    }
    let host = Host::at(&args.root)?;
    if let Some(b) = &args.baseline {
        if !host.is_live() {
            bail!("--baseline records the live host's data roots: run capture on the old host itself (--root /)");
        }
        refuse_existing(b, args.force)?;
    }
    let mut opts = CaptureOptions::default();
    opts.compose_dirs = args.compose_dirs.clone();
    opts.compose_files = compose_files(args, matches)?;
    opts.data_roots = args.data_roots.clone();
    opts.scan_limit = (args.scan_seconds > 0).then(|| std::time::Duration::from_secs(args.scan_seconds));
    let mut snapshot = capture::capture(&host, &opts);
    // The baseline is taken before the snapshot is written, so that the snapshot records it
    // (file, roots, SHA-256): `plan` then has `check` verify it on the new host.
    let took = match &args.baseline {
        Some(b) => {
            let mut o = homelab_probe::baseline::TakeOptions::new(args.data_roots.clone());
            o.force = args.force;
            let r = homelab_probe::baseline::take(&o, b)?;
            snapshot.baseline = Some(homelab_probe::baseline::recorded(&r, b)?);
            Some(r)
        }
        None => None,
    };
    let json = serde_json::to_string_pretty(&snapshot)? + "\n";
    if to_stdout {
        std::io::stdout().write_all(json.as_bytes())?;
    } else {
        std::fs::write(&args.output, &json).with_context(|| format!("cannot write {}", args.output.display()))?;
    }
    let mut err = anstream::stderr();
    summarize(&mut err, &snapshot)?;
    let mut code = ExitCode::SUCCESS;
    if let Some(r) = &took {
        writeln!(
            err,
            "wrote {}: owners and modes of {} entries under {} ({} bytes)",
            r.file,
            r.recorded.entries,
            r.roots.join(", "),
            r.bytes
        )?;
        if r.stats.unreadable > 0 || r.stats.problems > 0 {
            writeln!(
                err,
                "{} directories could not be read and {} entries could not be examined: they are recorded as unknown",
                r.stats.unreadable, r.stats.problems
            )?;
            code = ExitCode::from(1);
        }
    }
    if !to_stdout {
        writeln!(err, "wrote {}", args.output.display())?;
    }
    Ok(code)
}

fn summarize(out: &mut impl std::io::Write, s: &Snapshot) -> std::io::Result<()> {
    writeln!(out, "captured {}:", s.host.hostname.as_deref().unwrap_or("host"))?;
    for line in s.summary() {
        writeln!(out, "  {line}")?;
    }
    Ok(())
}

pub fn run_plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let snapshot = Snapshot::load(&args.snapshot)?;
    let plan = match plan::plan(&snapshot) {
        Ok(p) => p,
        Err(e @ plan::PlanError::Refused { .. }) => {
            // The refusal is the answer, not a failure of the tool: its lines, each ended.
            let mut err = anstream::stderr();
            writeln!(err, "homelab-verify: plan refused for {}", args.snapshot.display())?;
            for line in e.to_string().lines() {
                writeln!(err, "{}", printable(line))?;
            }
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot plan", args.snapshot.display())),
    };
    for (name, _) in plan.files() {
        refuse_existing(&args.out.join(name), args.force)?;
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut err = anstream::stderr();
    for (name, text) in plan.files() {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        writeln!(err, "wrote {}", path.display())?;
    }
    for w in &plan.warnings {
        writeln!(err, "warning: {}: {}", printable(&w.subject), printable(&w.message))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `s` with control characters (line breaks, escape sequences, carriage returns from the old
/// host's files) written as escapes, so that every message is one line and ends with its own
/// newline: a raw ESC would start a terminal sequence that swallows what follows, the newline
/// included.
fn printable(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}
