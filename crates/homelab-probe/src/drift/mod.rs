//! File-ownership drift: which entries under a data root are not owned by the expected
//! uid/gid, summarised for a person ([`DriftReport`]), and the safe fix with its undo journal
//! ([`fix`], [`journal`]).
//!
//! The walk itself is [`crate::scan`]; this module decides what a report holds and how roots
//! are validated. The probe that turns a report into findings is `check`'s drift probe.
//!
//! Roots are validated before anything is read (`prepare_roots`): they must exist and be
//! directories, system directories are refused by what they are, not what they are called
//! ([`guard`]: `/` through a bind mount is still `/`; system files belong to root, so a drift
//! check of one against one owner means a mistake), nested roots are walked once. For a fix, a
//! root named through a symbolic link or with a `..` component is refused too: the fix must
//! change only what the user named, so the user must name the real directory. The walk asks
//! [`guard`] about every directory it reaches and stops at a system one.
//!
//! With [`DriftOptions::plan_fix`] the report also holds the [`FixPlan`]: which entries the
//! fix would change and which it leaves alone (set-id files and files with capabilities, whose
//! bits chown clears; files with hard links the walk did not see, which chown changes there too).

pub(crate) mod entry;
pub mod fix;
pub mod guard;
#[doc(hidden)]
pub mod journal;

mod collect;

use std::collections::HashMap;
use std::path::{Component, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::scan;

// The scanner's types that a drift scan's caller sees (options, progress, the sink's arguments).
pub use crate::scan::escape::escape_path;
pub use crate::scan::{DirRef, Entry, Exclude, Offenders, Op, Owner, Progress, ScanStats, StopReason};

pub(crate) use collect::scan_prepared;

/// Top-level directories counted separately at most; the rest are summed under `(other)`.
pub const MAX_TOP_LEVEL: usize = 10_000;

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct DriftOptions {
    /// Directories to scan.
    pub roots: Vec<PathBuf>,
    /// The owner every entry must have.
    pub expected: Owner,
    /// Glob patterns of entries to skip (see [`Exclude`]).
    pub exclude: Vec<String>,
    /// Descend into other filesystems and bind mounts.
    pub cross_mounts: bool,
    /// Paths kept per owner class and of errors (the lexically first ones).
    pub samples: usize,
    /// Worker threads (0: two per CPU, see [`scan::worker_count`]).
    pub threads: usize,
    /// Stop after about this many entries.
    pub max_entries: Option<u64>,
    /// Stop after this long.
    pub max_duration: Option<Duration>,
    /// Live counters for a progress bar.
    pub progress: Option<Arc<Progress>>,
    /// Also look at what a fix would meet ([`FixPlan`]): set-id bits, file capabilities
    /// (one `getxattr` per offending regular file) and hard links.
    pub plan_fix: bool,
    /// Change set-id files and files with capabilities too (chown clears those bits).
    pub allow_setid: bool,
    /// Change files with hard links outside what the walk saw too (the other names change).
    pub include_outside_links: bool,
    /// More directories refused like the system ones, by identity ([`guard::SystemDirs::add`]).
    pub protect: Vec<PathBuf>,
}

impl DriftOptions {
    /// Options for `roots` and `expected` with the defaults: 10 samples, two threads per CPU,
    /// no limits, no excludes, staying on each root's filesystem.
    pub fn new(roots: Vec<PathBuf>, expected: Owner) -> Self {
        DriftOptions {
            roots,
            expected,
            exclude: Vec::new(),
            cross_mounts: false,
            samples: 10,
            threads: 0,
            max_entries: None,
            max_duration: None,
            progress: None,
            plan_fix: false,
            allow_setid: false,
            include_outside_links: false,
            protect: Vec::new(),
        }
    }

    /// The system directories and [`DriftOptions::protect`].
    fn system_dirs(&self) -> guard::SystemDirs {
        let mut s = guard::SystemDirs::load();
        for p in &self.protect {
            s.add(p, &format!("`{}` (protected)", escape_path(p)));
        }
        s
    }
}

/// Why a drift scan, fix or undo could not run (bad input: the CLI's exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriftError {
    /// No root was given.
    #[error("no root directory given")]
    NoRoots,
    /// A root cannot be used.
    #[error("{}: {message}", escape_path(path))]
    Root {
        /// The root as given.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A root, or a directory reached from one, is a system directory.
    #[error("{0}")]
    SystemDirectory(guard::Refused),
    /// An exclude pattern is not a valid glob.
    #[error("bad --exclude pattern: {0}")]
    Exclude(#[from] globset::Error),
    /// The journal could not be created, written or read.
    #[error("{}: {message}", escape_path(path))]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Checks and normalises `roots`: each must be an existing directory, a system directory
/// (by identity, as given and canonical: [`guard::SystemDirs::check`]) is refused, roots
/// inside another root are dropped. With `for_fix`, a root named through a symbolic link or
/// with `.`/`..` components is refused (the error names the real directory to use instead).
/// Returns absolute paths without symbolic links.
pub(crate) fn prepare_roots(
    roots: &[PathBuf],
    for_fix: bool,
    system: &guard::SystemDirs,
) -> Result<Vec<PathBuf>, DriftError> {
    if roots.is_empty() {
        return Err(DriftError::NoRoots);
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for given in roots {
        let bad = |message: String| DriftError::Root { path: given.clone(), message };
        let real = given.canonicalize().map_err(|e| bad(format!("cannot use as a root: {e}")))?;
        if !real.is_dir() {
            return Err(bad("not a directory".into()));
        }
        // As given (a bind mount has a path of its own) and canonical.
        system.check(given).map_err(DriftError::SystemDirectory)?;
        system.check(&real).map_err(DriftError::SystemDirectory)?;
        if for_fix {
            if given.components().any(|c| matches!(c, Component::ParentDir | Component::CurDir)) {
                return Err(bad(format!(
                    "refusing to fix a root given with `.` or `..`; name the directory itself: {}",
                    escape_path(&real)
                )));
            }
            let absolute = std::path::absolute(given).map_err(|e| bad(e.to_string()))?;
            if absolute != real {
                return Err(bad(format!(
                    "refusing to fix through a symbolic link: it resolves to {}; name that directory itself",
                    escape_path(&real)
                )));
            }
        }
        out.push(real);
    }
    out.sort();
    out.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for r in out {
        if !kept.iter().any(|k| r.starts_with(k)) {
            kept.push(r);
        }
    }
    Ok(kept)
}

/// Entries of one owner class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerCount {
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Entries with this owner.
    pub count: u64,
    /// The lexically first paths (escaped, see [`crate::scan::escape`]), at most
    /// [`DriftOptions::samples`].
    pub samples: Vec<String>,
}

/// Offending entries under one top-level entry of a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopLevelCount {
    /// The root (escaped).
    pub root: String,
    /// The first component below the root (escaped); `.` is the root itself, `(other)` sums
    /// what did not fit in [`MAX_TOP_LEVEL`] entries.
    pub name: String,
    /// Offending entries in it (itself included).
    pub count: u64,
}

/// A path that could not be examined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSample {
    /// The path (escaped).
    pub path: String,
    /// What failed.
    pub op: Op,
    /// The error, as the system says it (`Permission denied (os error 13)`).
    pub error: String,
}

/// The result of a drift scan (and of a fix, with [`DriftReport::fix`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DriftReport {
    /// The roots walked (absolute, symbolic links resolved, escaped).
    pub roots: Vec<String>,
    /// The expected owner.
    pub expected: Owner,
    /// Exclude patterns.
    pub exclude: Vec<String>,
    /// Whether other filesystems were descended.
    pub cross_mounts: bool,
    /// Counts of the walk.
    pub stats: ScanStats,
    /// Entries not owned by `expected`.
    pub offending: u64,
    /// Offending entries per owner, most first.
    pub by_owner: Vec<OwnerCount>,
    /// Offending entries per top-level entry of each root, most first.
    pub by_top_level: Vec<TopLevelCount>,
    /// Paths that could not be examined (unreadable directories, failed `statx`), not
    /// counting vanished entries.
    pub errors: u64,
    /// The lexically first errors.
    pub error_samples: Vec<ErrorSample>,
    /// Entries that disappeared between being listed and examined (a live filesystem).
    pub vanished: u64,
    /// Worker threads used.
    pub threads: usize,
    /// Wall time of the walk.
    pub elapsed_seconds: f64,
    /// What a fix would meet and leave alone ([`DriftOptions::plan_fix`]; with `--fix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<FixPlan>,
    /// What a fix did, when one was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<fix::FixSummary>,
}

/// Entries of one kind a fix must say something about, with the lexically first ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Flagged {
    /// How many entries.
    pub count: u64,
    /// The lexically first.
    pub samples: Vec<FlaggedPath>,
}

/// One flagged entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlaggedPath {
    /// The path (escaped).
    pub path: String,
    /// What about it: `mode 4755 (set-user-ID)`, `cap_net_raw=ep`, `3 links, 1 seen`.
    pub detail: String,
}

/// What a fix would do, and what it leaves alone unless told otherwise.
///
/// chown(2) clears the set-user-ID bit, the set-group-ID bit of a group-executable file and
/// the file capabilities (`security.capability`) of everything but a directory: a set-id root
/// program that becomes set-id 1000 is a change of privilege, so such files are left alone
/// without `allow_setid`. A file with hard links that the walk did not see (outside the roots,
/// or excluded) shares its inode with them, so changing it changes them: left alone without
/// `include_outside_links`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FixPlan {
    /// Offending entries the fix changes.
    pub changes: u64,
    /// Offending entries it leaves alone (the flagged ones that are not allowed).
    pub held: u64,
    /// Regular files with the set-user-ID bit, or the set-group-ID bit with group execute.
    pub setid: Flagged,
    /// Regular files with file capabilities.
    pub capabilities: Flagged,
    /// Non-directories with more hard links than the walk saw names.
    pub outside_links: Flagged,
    /// Whether set-id files and files with capabilities are changed (their bits cleared).
    pub allow_setid: bool,
    /// Whether files with links outside are changed.
    pub include_outside_links: bool,
}

/// Set-id bits chown clears on a non-directory: set-user-ID always, set-group-ID when the
/// group may execute (without it the bit marks mandatory locking and stays).
pub fn setid_cleared_by_chown(mode: u32) -> u32 {
    let mut bits = mode & 0o4000;
    if mode & 0o2010 == 0o2010 {
        bits |= 0o2000;
    }
    bits
}

fn is_regular(mode: u32) -> bool {
    mode & 0o170000 == 0o100000
}

fn setid_text(mode: u32) -> String {
    let bits = setid_cleared_by_chown(mode);
    let what = match bits {
        0o6000 => "set-user-ID and set-group-ID",
        0o4000 => "set-user-ID",
        _ => "set-group-ID",
    };
    format!("mode {:04o} ({what})", mode & 0o7777)
}

impl DriftReport {
    /// True when every entry has the expected owner and every directory could be read.
    pub fn clean(&self) -> bool {
        self.offending == 0 && self.errors == 0 && self.stats.stopped.is_none()
    }

    /// The run's verdict (`drift`'s exit status 0): without a fix, [`DriftReport::clean`];
    /// after an applied fix, every offending entry was changed (none failed, none was left
    /// alone on purpose), every directory could be read and the walk was not cut short (what
    /// the fix found offending now has the expected owner).
    pub fn ok(&self) -> bool {
        match &self.fix {
            Some(f) => {
                f.failed == 0
                    && f.held() == 0
                    && f.refused.is_none()
                    && self.errors == 0
                    && self.stats.stopped.is_none()
            }
            None => self.clean(),
        }
    }
}

/// A hook that sees every batch of offending entries with their open directory (the fixer,
/// or a printer of every path).
pub type Sink<'a> = &'a (dyn Fn(usize, &DirRef<'_>, &Offenders<'_>) + Sync);

/// Scans `opts.roots` (already prepared or not: they are prepared here for a scan)
/// and returns the report. `sink` sees every offending entry too.
/// A walk that reaches a system directory is refused ([`DriftError::SystemDirectory`]).
pub fn scan(opts: &DriftOptions, sink: Option<Sink<'_>>) -> Result<DriftReport, DriftError> {
    let system = opts.system_dirs();
    let roots = prepare_roots(&opts.roots, opts.plan_fix, &system)?;
    let (report, _, refused) = scan_prepared(&roots, opts, &system, None, sink)?;
    match refused {
        Some(r) => Err(DriftError::SystemDirectory(r)),
        None => Ok(report),
    }
}

/// Offending inodes with more than one link: (device, inode) -> (links, names the walk saw).
pub(crate) type SeenLinks = HashMap<scan::FileId, (u32, u32)>;
