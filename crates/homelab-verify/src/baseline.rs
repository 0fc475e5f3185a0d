//! `homelab-verify baseline`: take a baseline of owners and modes, check the tree against it,
//! restore owners from it (journaled; `drift undo` reverses), show what it holds.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anstyle::Style;
use clap::{Args, Subcommand, ValueEnum};
use homelab_probe::baseline::{self, BaselineReport, CheckOptions, TakeOptions};
use homelab_probe::drift::Progress;

use crate::drift::{ProgressBar, thousands, verdict};

const TAKE_EXIT: &str = "Exit codes: 0 the baseline was written, 1 written but some directories could not be read \
(they are recorded as unreadable), 2 bad usage or refused input.";
const CHECK_EXIT: &str = "Exit codes: 0 every entry has the owner, mode and type of the baseline and none is missing \
(new entries are allowed), 1 something differs, is missing or could not be read, 2 bad usage, refused input or a \
baseline that is not whole (truncated, corrupt, another version).";

/// Record the owners and modes of every entry under some roots (mixed-owner trees:
/// appdata/, /var/lib), check a tree against that record, put owners back from it.
#[derive(Debug, Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Record every entry under ROOTs: path, type, owner, group, mode (set-user-ID, set-group-ID,
    /// sticky), user and group names. Take it on the old host, before the copy.
    #[command(after_help = TAKE_EXIT)]
    Take(TakeArgs),
    /// Compare the tree with a baseline: entries whose owner, group, mode or type differ, that
    /// are missing or new, counted per change with samples.
    #[command(after_help = CHECK_EXIT)]
    Check(CheckArgs),
    /// Put owners and modes back from a baseline: the plan, or with --apply the changes, each
    /// journaled (and synced) before it is made.
    #[command(after_help = RESTORE_EXIT)]
    Restore(RestoreArgs),
    /// Undo a restore from its journal (the same as `drift undo`; also after an interrupted
    /// restore).
    Undo {
        /// The journal written by `baseline restore --apply`.
        journal: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = crate::drift::UndoFormat::Human)]
        format: crate::drift::UndoFormat,
    },
    /// Print every entry a baseline holds, one per line: type, uid:gid, mode, path.
    Show {
        /// The baseline file.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A summary for a person.
    Human,
    /// The report as JSON (docs/baseline.md).
    Json,
}

#[derive(Debug, Args)]
struct TakeArgs {
    /// Directories to record (absolute or relative; `/` is refused).
    #[arg(value_name = "ROOT", required = true)]
    roots: Vec<PathBuf>,
    /// The baseline file to write (zstd-compressed; mode 0600).
    #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
    output: PathBuf,
    /// Leave out entries matching GLOB (as `drift --exclude`); recorded, so a check leaves out
    /// the same. Repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Descend into other filesystems and bind mounts under a root.
    #[arg(long)]
    cross_mounts: bool,
    /// Worker threads (default: two per CPU).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Never show the progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
}

/// `OLD=NEW` of `--map`.
fn parse_map(s: &str) -> Result<(PathBuf, PathBuf), String> {
    let (old, new) = s.split_once('=').ok_or("expected OLD=NEW (two absolute paths)")?;
    if !old.starts_with('/') || !new.starts_with('/') {
        return Err("both sides of OLD=NEW must be absolute paths".into());
    }
    Ok((PathBuf::from(old), PathBuf::from(new)))
}

const RESTORE_EXIT: &str = "Exit codes: 0 nothing to restore (or, with --apply, everything restored), 1 something \
to restore, left alone or failed, 2 bad usage, refused input or a baseline that is not whole (nothing is changed).";

#[derive(Debug, Args)]
struct RestoreArgs {
    #[command(flatten)]
    check: CheckArgs,
    /// Make the changes; each is journaled first, for `baseline undo`.
    #[arg(long)]
    apply: bool,
    /// With --apply: the journal to create (default: ./homelab-baseline-restore-<UTC time>.journal).
    #[arg(long, value_name = "FILE", requires = "apply")]
    journal: Option<PathBuf>,
    /// Put set-user-ID and set-group-ID bits of regular files back, and keep file capabilities
    /// that chown clears (check the files' content first: they were someone else's for a while).
    #[arg(long)]
    allow_setid: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The baseline file.
    file: PathBuf,
    /// A root that now mounts elsewhere: compare the baseline's OLD (or a root below it) at NEW.
    /// Repeatable.
    #[arg(long, value_name = "OLD=NEW", value_parser = parse_map)]
    map: Vec<(PathBuf, PathBuf)>,
    /// Compare owners by user and group name where both hosts have one (for ids renumbered on
    /// purpose); by number otherwise.
    #[arg(long)]
    by_name: bool,
    /// Paths shown per change.
    #[arg(long, value_name = "N", default_value_t = 5)]
    samples: usize,
    /// Worker threads of the walk (default: two per CPU); `restore --apply` also makes its
    /// changes on N threads (default: one per CPU).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn progress(no_progress: bool) -> (Option<Arc<Progress>>, Option<ProgressBar>) {
    if no_progress || !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let p = Arc::new(Progress::default());
    (Some(p.clone()), Some(ProgressBar::start_with(p, false)))
}

fn write_out(f: impl FnOnce(&mut anstream::Stdout) -> std::io::Result<()>) -> anyhow::Result<()> {
    let mut out = anstream::stdout();
    match f(&mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub fn run(args: &BaselineArgs) -> anyhow::Result<ExitCode> {
    match &args.action {
        Action::Take(a) => run_take(a),
        Action::Check(a) => run_check(a),
        Action::Restore(a) => run_restore(a),
        Action::Undo { journal, format } => crate::drift::run_undo(journal, *format),
        Action::Show { file } => run_show(file),
    }
}

fn run_take(a: &TakeArgs) -> anyhow::Result<ExitCode> {
    let mut opts = TakeOptions::new(a.roots.clone());
    opts.exclude = a.exclude.clone();
    opts.cross_mounts = a.cross_mounts;
    opts.threads = a.threads;
    opts.force = a.force;
    let (p, bar) = progress(a.no_progress);
    opts.progress = p;
    let result = baseline::take(&opts, &a.output);
    if let Some(b) = bar {
        b.stop();
    }
    let r = result?;
    let ok = r.errors.is_empty() && r.stats.unreadable == 0 && r.stats.problems == 0;
    write_out(|out| match a.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &r)?;
            writeln!(out)
        }
        Format::Human => {
            let bold = Style::new().bold();
            writeln!(out, "{bold}baseline{bold:#} of {} -> {}", r.roots.join(", "), r.file)?;
            writeln!(
                out,
                "  {} entries in {} directories, {} owners, {:.2} s",
                thousands(r.recorded.entries),
                thousands(r.recorded.directories),
                r.owners,
                r.elapsed_seconds
            )?;
            writeln!(
                out,
                "  {} bytes ({:.2} per entry; {} before compression)",
                thousands(r.bytes),
                r.bytes as f64 / r.recorded.entries.max(1) as f64,
                thousands(r.raw_bytes)
            )?;
            if r.stats.mount_points > 0 {
                writeln!(out, "  {} mount points not descended (--cross-mounts to descend)", r.stats.mount_points)?;
            }
            if !ok {
                let s = verdict(false);
                writeln!(
                    out,
                    "  {s}{} directories could not be read, {} entries could not be examined{s:#} (recorded as unknown):",
                    r.stats.unreadable, r.stats.problems
                )?;
                for e in &r.errors {
                    writeln!(out, "    {}: {:?}: {}", e.path, e.op, e.error)?;
                }
            }
            Ok(())
        }
    })?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn check_options(
    file: &std::path::Path,
    map: &[(PathBuf, PathBuf)],
    by_name: bool,
    samples: usize,
    threads: usize,
) -> CheckOptions {
    let mut o = CheckOptions::new(file.to_path_buf());
    o.map = map.to_vec();
    o.by_name = by_name;
    o.samples = samples;
    o.threads = threads;
    o
}

fn run_check(a: &CheckArgs) -> anyhow::Result<ExitCode> {
    let mut opts = check_options(&a.file, &a.map, a.by_name, a.samples, a.threads);
    let (p, bar) = progress(a.no_progress);
    opts.progress = p;
    let result = baseline::check(&opts);
    if let Some(b) = bar {
        b.stop();
    }
    let r = result?;
    write_out(|out| match a.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &r)?;
            writeln!(out)
        }
        Format::Human => write_check(out, &r),
    })?;
    Ok(if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn run_restore(a: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let c = &a.check;
    let mut opts = baseline::RestoreOptions::new(c.file.clone());
    opts.check = check_options(&c.file, &c.map, c.by_name, c.samples, c.threads);
    opts.apply = a.apply;
    opts.journal = a.journal.clone();
    opts.allow_setid = a.allow_setid;
    let (p, bar) = progress(c.no_progress);
    opts.check.progress = p;
    let result = baseline::restore(&opts);
    if let Some(b) = bar {
        b.stop();
    }
    let r = result?;
    write_out(|out| match c.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &r)?;
            writeln!(out)
        }
        Format::Human => write_restore(out, &r),
    })?;
    Ok(if r.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn write_restore(out: &mut impl Write, r: &baseline::RestoreReport) -> std::io::Result<()> {
    write_check(out, &r.check)?;
    let p = &r.plan;
    writeln!(
        out,
        "\n  restore: {} owners and {} modes to put back; {} left alone (type changed), {} missing (nothing to put back){}{}",
        thousands(p.owners),
        thousands(p.modes),
        thousands(p.type_changed),
        thousands(p.missing),
        if p.hard_links > 0 {
            format!(", {} more names of hard-linked files", thousands(p.hard_links))
        } else {
            String::new()
        },
        if p.no_such_id > 0 { format!(", {} owners unknown here", thousands(p.no_such_id)) } else { String::new() },
    )?;
    if p.setid_withheld > 0 {
        writeln!(
            out,
            "  {} set-user/group-ID bits or file capabilities not put back (--allow-setid):",
            thousands(p.setid_withheld)
        )?;
    }
    for n in &p.notes {
        writeln!(out, "    {n}")?;
    }
    match &r.applied {
        None if p.owners + p.modes > 0 => {
            writeln!(
                out,
                "  Nothing was changed. Add --apply to do it; every change is journaled first, for `baseline undo`."
            )?;
        }
        None => {}
        Some(a) => {
            let s = verdict(a.failed == 0 && a.skipped == 0);
            writeln!(
                out,
                "  {s}applied{s:#}: {} changed, {} already as in the baseline, {} left alone (changed since the walk), {} failed",
                thousands(a.changed),
                thousands(a.already),
                thousands(a.skipped),
                thousands(a.failed)
            )?;
            for f in &a.failures {
                writeln!(out, "    {f}")?;
            }
            for l in &a.links_outside {
                writeln!(out, "    {l}")?;
            }
            writeln!(out, "  journal: {}", a.journal)?;
            writeln!(out, "  undo with: homelab-verify baseline undo {}", a.journal)?;
        }
    }
    Ok(())
}

/// `999:999 (postgres:postgres)`.
fn with_names(value: &str, names: &Option<String>) -> String {
    match names {
        Some(n) => format!("{value} ({n})"),
        None => value.to_owned(),
    }
}

pub(crate) fn write_check(out: &mut impl Write, r: &BaselineReport) -> std::io::Result<()> {
    let bold = Style::new().bold();
    let roots: Vec<String> = r
        .roots
        .iter()
        .map(|p| if p.baseline == p.live { p.live.clone() } else { format!("{} (recorded as {})", p.live, p.baseline) })
        .collect();
    writeln!(
        out,
        "{bold}baseline{bold:#} {} (taken on {} at {}) against {}",
        r.baseline,
        r.taken_on.as_deref().unwrap_or("an unknown host"),
        r.taken_at,
        roots.join(", ")
    )?;
    writeln!(
        out,
        "  {} entries in {} directories, {:.2} s{}",
        thousands(r.stats.entries),
        thousands(r.stats.directories),
        r.elapsed_seconds,
        if r.by_name { ", owners compared by name" } else { "" }
    )?;
    if let Some(why) = r.stats.stopped {
        writeln!(out, "  STOPPED EARLY ({}): the check is incomplete", baseline::compare::limit_name(why))?;
    }
    let s = verdict(r.ok());
    writeln!(
        out,
        "  {s}{}{s:#}  {} same, {} owner, {} mode, {} type, {} missing, {} new{}{}",
        if r.ok() { "PASS" } else { "FAIL" },
        thousands(r.same),
        thousands(r.owner),
        thousands(r.mode),
        thousands(r.kind),
        thousands(r.missing),
        thousands(r.new),
        if r.unchecked > 0 {
            format!(", {} unchecked (unreadable now)", thousands(r.unchecked))
        } else {
            String::new()
        },
        if r.unknown > 0 {
            format!(", {} unknown (unreadable when taken)", thousands(r.unknown))
        } else {
            String::new()
        },
    )?;
    if !r.changes.is_empty() {
        writeln!(out)?;
    }
    for (i, c) in r.changes.iter().enumerate() {
        if i == 30 {
            writeln!(out, "  ... and {} more changes (--format json lists all)", r.changes.len() - 30)?;
            break;
        }
        let under =
            if c.under.is_empty() { c.root.clone() } else { format!("{}/{}", c.root.trim_end_matches('/'), c.under) };
        let what = match c.change {
            baseline::compare::Change::Owner => {
                format!("{} -> {}", with_names(&c.from, &c.from_names), with_names(&c.to, &c.to_names))
            }
            baseline::compare::Change::Mode => format!("mode {} -> {}", c.from, c.to),
            baseline::compare::Change::Type => format!("{} -> {}", c.from, c.to),
            baseline::compare::Change::Missing => "missing".into(),
            baseline::compare::Change::New => "new".into(),
        };
        let entries = if c.count == 1 { "entry  " } else { "entries" };
        writeln!(out, "  {:>10} {entries} {what} under {under}", thousands(c.count))?;
        for p in &c.samples {
            writeln!(out, "  {:>10}         {p}", "")?;
        }
    }
    if r.errors > 0 {
        let s = verdict(false);
        writeln!(out, "\n  {s}{} paths could not be examined{s:#}", thousands(r.errors))?;
        for e in &r.error_samples {
            writeln!(out, "    {}: {:?}: {}", e.path, e.op, e.error)?;
        }
    }
    Ok(())
}

fn kind_letter(k: homelab_probe::model::fs::FileKind) -> &'static str {
    use homelab_probe::model::fs::FileKind::*;
    match k {
        File => "file",
        Dir => "dir",
        Symlink => "link",
        Char => "char",
        Block => "block",
        Fifo => "fifo",
        Socket => "sock",
    }
}

fn run_show(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut broken = false;
    let (header, totals) = baseline::show(file, |path, st| {
        if !broken {
            let r = writeln!(out, "{:<5} {}:{} {:04o} {path}", kind_letter(st.kind), st.uid, st.gid, st.mode);
            broken = r.is_err();
        }
    })?;
    if !broken {
        let _ = writeln!(
            out,
            "# {} entries in {} directories ({} unreadable when taken); taken on {} at {} by {}; roots {}",
            totals.entries,
            totals.directories,
            totals.unreadable,
            header.host.as_deref().unwrap_or("?"),
            header.created,
            header.tool,
            header.roots.join(", ")
        );
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}
