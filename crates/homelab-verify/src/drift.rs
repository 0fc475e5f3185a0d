//! `homelab-verify drift`: scan data roots for entries not owned by the expected uid/gid,
//! plan and apply a journaled fix, undo it.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use clap::{Args, Subcommand, ValueEnum};
use homelab_probe::drift::{self, DriftOptions, DriftReport, Owner, Progress, escape_path, fix};

const DRIFT_EXIT: &str = "Exit codes: 0 every entry has the expected owner (or, with --apply, now has it; for undo: \
every owner restored), 1 drift found, a directory unreadable or a change not made, 2 bad usage or refused input.";

/// Scan ROOTs for files, directories and symbolic links whose owner or group is not
/// --uid/--gid; with --fix, plan the fix; with --fix --apply, make it, journaled for undo.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true, after_help = DRIFT_EXIT)]
pub struct DriftArgs {
    #[command(subcommand)]
    action: Option<DriftAction>,
    /// Directories to scan (absolute or relative; `/` is refused).
    #[arg(value_name = "ROOT", required = true)]
    roots: Vec<PathBuf>,
    /// The uid every entry must have (PUID).
    #[arg(long, value_name = "U", required = true)]
    uid: Option<u32>,
    /// The gid every entry must have (PGID).
    #[arg(long, value_name = "G", required = true)]
    gid: Option<u32>,
    /// Skip entries matching GLOB: a pattern without `/` matches names (`*.part`,
    /// `.snapshots`), one with `/` the path below the root (`Movies/**/extras`). Repeatable.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DriftFormat::Human)]
    format: DriftFormat,
    /// Descend into other filesystems and bind mounts under a root (default: stay on each
    /// root's filesystem, like `find -xdev`).
    #[arg(long)]
    cross_mounts: bool,
    /// Paths shown per owner (the lexically first ones).
    #[arg(long, value_name = "N", default_value_t = 10)]
    samples: usize,
    /// Worker threads (default: two per CPU, which hides disk waits on a cold cache).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Stop after about N entries (the result then cannot be clean).
    #[arg(long, value_name = "N")]
    max_entries: Option<u64>,
    /// Print the plan: what would change (nothing is changed without --apply).
    #[arg(long)]
    fix: bool,
    /// With --fix: change the owners, each change journaled (and synced) before it is made.
    #[arg(long, requires = "fix")]
    apply: bool,
    /// With --apply: the journal to create (default: ./homelab-drift-<UTC time>.journal).
    #[arg(long, value_name = "FILE", requires = "apply")]
    journal: Option<PathBuf>,
    /// With --fix: also change set-user-ID/set-group-ID files and files with capabilities
    /// (chown clears those bits; undo restores them). Without it they are left alone.
    #[arg(long, requires = "fix")]
    allow_setid: bool,
    /// With --fix: also change files with hard links outside the roots (their other names
    /// change too). Without it they are left alone.
    #[arg(long, requires = "fix")]
    include_outside_links: bool,
    /// Never show the progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum DriftAction {
    /// Restore every owner recorded in a fix journal (also after an interrupted fix).
    #[command(after_help = DRIFT_EXIT)]
    Undo {
        /// The journal written by `drift --fix --apply`.
        journal: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = UndoFormat::Human)]
        format: UndoFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UndoFormat {
    /// One line of counts, then any problem, then OK or INCOMPLETE.
    Human,
    /// The undo report as JSON.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DriftFormat {
    /// A summary for a person: counts per owner and per top-level directory, sample paths.
    Human,
    /// The report as JSON (docs/drift.md).
    Json,
    /// Every offending path, each followed by a NUL byte, like `find -print0` (for `xargs -0`).
    Paths0,
}

pub fn run(args: &DriftArgs) -> anyhow::Result<ExitCode> {
    if let Some(DriftAction::Undo { journal, format }) = &args.action {
        return run_undo(journal, *format);
    }
    let (Some(uid), Some(gid)) = (args.uid, args.gid) else {
        anyhow::bail!("refusing to run without an expected owner: give --uid and --gid");
    };
    if args.format == DriftFormat::Paths0 && args.fix {
        anyhow::bail!("--format paths0 lists paths; it cannot be combined with --fix");
    }
    let mut opts = DriftOptions::new(args.roots.clone(), Owner { uid, gid });
    opts.exclude = args.exclude.clone();
    opts.cross_mounts = args.cross_mounts;
    opts.samples = args.samples;
    opts.threads = args.threads;
    opts.max_entries = args.max_entries;
    opts.plan_fix = args.fix;
    opts.allow_setid = args.allow_setid;
    opts.include_outside_links = args.include_outside_links;
    let bar = (!args.no_progress && std::io::stderr().is_terminal()).then(|| {
        let p = Arc::new(Progress::default());
        opts.progress = Some(p.clone());
        ProgressBar::start(p)
    });
    let result = if args.fix && args.apply {
        let journal = args.journal.clone().unwrap_or_else(default_journal);
        fix::apply(&opts, &journal)
    } else if args.format == DriftFormat::Paths0 {
        let out = std::sync::Mutex::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()));
        let sink = |_w: usize, dir: &drift::DirRef<'_>, es: &drift::Offenders<'_>| {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            let mut path = Vec::new();
            for e in es.iter() {
                path.clear();
                dir.write_entry_path(e.name, &mut path);
                path.push(0);
                // A closed pipe (`| head`) ends the listing; the scan still finishes.
                let _ = out.write_all(&path);
            }
        };
        let r = drift::scan(&opts, Some(&sink));
        out.into_inner().unwrap_or_else(|p| p.into_inner()).flush().ok();
        r
    } else {
        drift::scan(&opts, None)
    };
    if let Some(b) = bar {
        b.stop();
    }
    let report = result?;
    let mut out = anstream::stdout();
    let written = match args.format {
        DriftFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from).and_then(|_| writeln!(out))
        }
        DriftFormat::Human => write_human(&mut out, &report, args.fix),
        DriftFormat::Paths0 => Ok(()),
    };
    // `drift ... | head` closes the pipe early: not an error of the scan.
    match written.and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn default_journal() -> PathBuf {
    let now = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    PathBuf::from(format!("homelab-drift-{now}.journal"))
}

pub(crate) fn run_undo(journal: &Path, format: UndoFormat) -> anyhow::Result<ExitCode> {
    let rep = fix::undo(journal)?;
    let mut out = anstream::stdout();
    match format {
        UndoFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rep)?;
            writeln!(out)?;
        }
        UndoFormat::Human => {
            writeln!(
                out,
                "undo {}: {} records: {} owners restored, {} already as recorded, {} left alone, {} failed{}",
                rep.journal,
                rep.records,
                rep.restored,
                rep.already,
                rep.skipped,
                rep.failed,
                if rep.torn_tail { " (the last line was torn: that change never happened)" } else { "" }
            )?;
            for p in &rep.problems {
                writeln!(out, "  {p}")?;
            }
            let s = verdict(rep.complete());
            writeln!(out, "{s}{}{s:#}", if rep.complete() { "OK" } else { "INCOMPLETE" })?;
        }
    }
    out.flush()?;
    Ok(if rep.complete() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(crate) fn verdict(ok: bool) -> Style {
    Style::new().fg_color(Some((if ok { AnsiColor::Green } else { AnsiColor::Red }).into())).bold()
}

/// `1234567` -> `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn write_human(out: &mut impl Write, r: &DriftReport, plan: bool) -> std::io::Result<()> {
    let bold = Style::new().bold();
    let st = &r.stats;
    writeln!(out, "{bold}drift{bold:#} under {} (expected owner {})", r.roots.join(", "), r.expected)?;
    writeln!(
        out,
        "  {} entries in {} directories, {:.2} s, {} threads",
        thousands(st.entries),
        thousands(st.directories),
        r.elapsed_seconds,
        r.threads
    )?;
    let mut extra = Vec::new();
    if st.excluded > 0 {
        extra.push(format!("{} excluded", thousands(st.excluded)));
    }
    if st.mount_points > 0 {
        extra.push(format!("{} mount points not descended (--cross-mounts to descend)", st.mount_points));
    }
    if r.vanished > 0 {
        extra.push(format!("{} vanished during the scan", thousands(r.vanished)));
    }
    if let Some(why) = st.stopped {
        extra.push(format!("STOPPED EARLY ({why:?}): the scan is incomplete"));
    }
    if !extra.is_empty() {
        writeln!(out, "  {}", extra.join(", "))?;
    }
    if r.offending == 0 {
        let s = verdict(true);
        writeln!(out, "  {s}PASS{s:#}  every entry is owned by {}", r.expected)?;
    } else {
        let s = verdict(false);
        writeln!(out, "  {s}FAIL{s:#}  {} entries are not owned by {}", thousands(r.offending), r.expected)?;
        writeln!(out, "\n  by owner (uid:gid)")?;
        for c in &r.by_owner {
            let owner = format!("{}:{}", c.uid, c.gid);
            let mut samples = c.samples.iter();
            writeln!(out, "    {owner:<14} {:>10}  {}", thousands(c.count), samples.next().map_or("", |s| s))?;
            for s in samples {
                writeln!(out, "    {:<14} {:>10}  {s}", "", "")?;
            }
        }
        writeln!(out, "\n  by top-level directory")?;
        for t in r.by_top_level.iter().take(20) {
            let name = if t.name == "." { t.root.clone() } else { format!("{}/{}", t.root, t.name) };
            writeln!(out, "    {:>10}  {name}", thousands(t.count))?;
        }
        if r.by_top_level.len() > 20 {
            writeln!(out, "    ... and {} more (--format json lists all)", r.by_top_level.len() - 20)?;
        }
    }
    if r.errors > 0 {
        let s = verdict(false);
        writeln!(out, "\n  {s}{} paths could not be examined{s:#}", thousands(r.errors))?;
        for e in &r.error_samples {
            writeln!(out, "    {}: {:?}: {}", e.path, e.op, e.error)?;
        }
    }
    if let Some(p) = &r.plan {
        write_plan(out, p, r.fix.is_some())?;
    }
    match &r.fix {
        Some(f) => {
            writeln!(
                out,
                "\n  fix: {} owners changed to {}, {} left alone (changed since the scan), {} failed",
                thousands(f.changed),
                r.expected,
                thousands(f.skipped),
                thousands(f.failed)
            )?;
            for x in &f.failures {
                writeln!(out, "    {x}")?;
            }
            if f.held() > 0 {
                let s = verdict(false);
                writeln!(
                    out,
                    "  {s}held back{s:#} (owners unchanged): set-id or capability files: {} (--allow-setid), files with links outside: {} (--include-outside-links)",
                    thousands(f.held_setid),
                    thousands(f.held_outside_links)
                )?;
            }
            if f.cleared_setid + f.cleared_capabilities > 0 {
                writeln!(
                    out,
                    "  chown cleared set-id bits: {}, capabilities: {} (never re-applied under the new owner; undo restores them):",
                    thousands(f.cleared_setid),
                    thousands(f.cleared_capabilities)
                )?;
                for x in &f.cleared {
                    writeln!(out, "    {x}")?;
                }
            }
            if f.changed_outside_links > 0 {
                writeln!(
                    out,
                    "  changed with hard links outside the roots: {} (those names changed too)",
                    thousands(f.changed_outside_links)
                )?;
            }
            if let Some(why) = &f.refused {
                let s = verdict(false);
                writeln!(out, "  {s}STOPPED{s:#}: {why}; the changes made before are in the journal")?;
            }
            writeln!(out, "  journal: {}", f.journal)?;
            writeln!(out, "  undo with: homelab-verify drift undo {}", f.journal)?;
        }
        None if plan && r.offending > 0 => {
            let changes = r.plan.as_ref().map_or(r.offending, |p| p.changes);
            let which = if changes == r.offending {
                format!("these {}", thousands(changes))
            } else {
                format!("{} of these {}", thousands(changes), thousands(r.offending))
            };
            writeln!(
                out,
                "\n  plan: change the owner of {which} entries to {} (symbolic links themselves, never their targets).",
                r.expected
            )?;
            writeln!(
                out,
                "  Nothing was changed. Add --apply to do it; every change is journaled first, for `drift undo`."
            )?;
        }
        None => {}
    }
    Ok(())
}

/// What the fix meets beyond owners: set-id bits and capabilities chown clears, links outside.
fn write_plan(out: &mut impl Write, p: &drift::FixPlan, applied: bool) -> std::io::Result<()> {
    let list = |out: &mut dyn Write, f: &drift::Flagged| -> std::io::Result<()> {
        for x in &f.samples {
            writeln!(out, "    {}  ({})", x.path, x.detail)?;
        }
        if f.count > f.samples.len() as u64 {
            writeln!(
                out,
                "    ... and {} more (--format json, --samples N)",
                thousands(f.count - f.samples.len() as u64)
            )?;
        }
        Ok(())
    };
    let changed = if applied { "changed" } else { "to be changed" };
    if p.setid.count > 0 {
        let how = if p.allow_setid {
            format!("{changed} (--allow-setid): chown clears the set-id bits; undo puts them back")
        } else {
            "left alone: chown would clear the set-id bits (a set-id program would change whose privileges it carries); --allow-setid changes them".to_owned()
        };
        writeln!(out, "\n  set-id files: {}, {how}", thousands(p.setid.count))?;
        list(out, &p.setid)?;
    }
    if p.capabilities.count > 0 {
        let how = if p.allow_setid {
            format!("{changed} (--allow-setid): chown removes the capabilities; undo puts them back")
        } else {
            "left alone: chown would remove the capabilities (the program would lose its privileges); --allow-setid changes them".to_owned()
        };
        writeln!(out, "\n  files with capabilities: {}, {how}", thousands(p.capabilities.count))?;
        list(out, &p.capabilities)?;
    }
    if p.outside_links.count > 0 {
        let how = if p.include_outside_links {
            format!("{changed} (--include-outside-links): their other names change too")
        } else {
            "left alone: they share their inode with names outside the roots (or excluded), which would change too; --include-outside-links changes them".to_owned()
        };
        writeln!(out, "\n  files with hard links outside: {}, {how}", thousands(p.outside_links.count))?;
        list(out, &p.outside_links)?;
    }
    Ok(())
}

/// The progress bar: entries/s, offending so far and a directory being read.
pub(crate) struct ProgressBar {
    bar: indicatif::ProgressBar,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressBar {
    pub(crate) fn start(p: Arc<Progress>) -> Self {
        Self::start_with(p, true)
    }

    /// The bar; `offending`: whether to show the offending count (drift), else entries only.
    pub(crate) fn start_with(p: Arc<Progress>, offending: bool) -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        // `wide_msg` cuts the message to the terminal's width, so the line never wraps.
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {wide_msg}") {
            bar.set_style(style);
        }
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr_with_hz(10));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (bar.clone(), stop.clone());
        let start = std::time::Instant::now();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let n = p.entries.load(Ordering::Relaxed);
                let rate = n as f64 / start.elapsed().as_secs_f64().max(0.001);
                let cur = p.current.lock().map(|c| escape_path(&c)).unwrap_or_default();
                let off = if offending {
                    format!(", {} offending", thousands(p.offending.load(Ordering::Relaxed)))
                } else {
                    String::new()
                };
                b.set_message(format!("{} entries ({}/s){off}  {cur}", thousands(n), thousands(rate as u64)));
                b.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        ProgressBar { bar, stop, thread: Some(thread) }
    }

    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}
