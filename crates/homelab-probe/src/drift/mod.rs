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

use std::collections::{BinaryHeap, HashMap};
use std::ffi::CStr;
use std::path::{Component, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::scan::escape::escape;
use crate::scan::{self, Problem, ScanOptions, Visitor};

// The scanner's types that a drift scan's caller sees (options, progress, the sink's arguments).
pub use crate::scan::escape::escape_path;
pub use crate::scan::{DirRef, Entry, Exclude, Offenders, Op, Owner, Progress, ScanStats, StopReason};

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

/// Walks prepared roots. Returns the report, the offending inodes with several links and how
/// many of their names were seen (with `plan_fix`, for the fix), and the system directory the
/// walk reached, if it did (it stopped there).
pub(crate) fn scan_prepared(
    roots: &[PathBuf],
    opts: &DriftOptions,
    system: &guard::SystemDirs,
    skip: Option<scan::FileId>,
    sink: Option<Sink<'_>>,
) -> Result<(DriftReport, SeenLinks, Option<guard::Refused>), DriftError> {
    let exclude = Exclude::new(&opts.exclude)?;
    let start = Instant::now();
    let threads = scan::worker_count(opts.threads);
    let so = ScanOptions {
        expected: opts.expected,
        cross_mounts: opts.cross_mounts,
        exclude,
        threads,
        max_entries: opts.max_entries,
        deadline: opts.max_duration.map(|d| start + d),
        progress: opts.progress.clone(),
        skip,
    };
    let collector = Collector {
        samples: opts.samples,
        sink,
        workers: (0..threads).map(|_| Mutex::new(Agg::default())).collect(),
        roots,
        plan: opts.plan_fix,
        system,
        refused: Mutex::new(None),
    };
    let stats = scan::scan(roots, &so, &collector).map_err(|e| DriftError::Root {
        path: e.path.clone(),
        message: format!("cannot use as a root: {}", e.source),
    })?;
    let refused = collector.refused.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut all = Agg::default();
    for w in collector.workers {
        all.merge(w.into_inner().unwrap_or_else(|p| p.into_inner()), opts.samples);
    }
    let (plan, seen_links) = if opts.plan_fix { all.plan(opts) } else { (None, SeenLinks::new()) };
    let mut by_owner: Vec<OwnerCount> = all
        .by_owner
        .into_iter()
        .map(|(o, c)| OwnerCount { uid: o.uid, gid: o.gid, count: c.count, samples: sorted_samples(c.samples) })
        .collect();
    by_owner.sort_by(|a, b| b.count.cmp(&a.count).then((a.uid, a.gid).cmp(&(b.uid, b.gid))));
    let mut by_top_level: Vec<TopLevelCount> = all
        .by_top
        .into_iter()
        .flat_map(|(root, names)| {
            let root = roots.get(root).map(|r| escape_path(r)).unwrap_or_default();
            names.into_iter().map(move |(name, count)| TopLevelCount { root: root.clone(), name: escape(&name), count })
        })
        .collect();
    if all.top_other > 0 {
        by_top_level.push(TopLevelCount { root: String::new(), name: "(other)".into(), count: all.top_other });
    }
    by_top_level.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.root, &a.name).cmp(&(&b.root, &b.name))));
    let mut errs: Vec<(Vec<u8>, Op, String)> = all.errors.into_vec();
    errs.sort();
    let report = DriftReport {
        roots: roots.iter().map(|r| escape_path(r)).collect(),
        expected: opts.expected,
        exclude: opts.exclude.clone(),
        cross_mounts: opts.cross_mounts,
        stats,
        offending: by_owner.iter().map(|c| c.count).sum(),
        by_owner,
        by_top_level,
        errors: all.error_count,
        error_samples: errs.into_iter().map(|(p, op, error)| ErrorSample { path: escape(&p), op, error }).collect(),
        vanished: all.vanished,
        threads,
        elapsed_seconds: start.elapsed().as_secs_f64(),
        plan,
        fix: None,
    };
    Ok((report, seen_links, refused))
}

fn by_owner_total(a: &Agg) -> u64 {
    a.by_owner.values().map(|c| c.count).sum()
}

fn sorted_samples(heap: BinaryHeap<Vec<u8>>) -> Vec<String> {
    heap.into_sorted_vec().iter().map(|p| escape(p)).collect()
}

#[derive(Default)]
struct Class {
    count: u64,
    samples: BinaryHeap<Vec<u8>>,
}

/// An inode with more than one link, offending: how many of its names the walk saw.
struct Linked {
    nlink: u32,
    seen: u32,
    /// Whether it is also set-id or has capabilities.
    flagged: bool,
    /// The lexically first of its names seen.
    first: Vec<u8>,
}

/// Flagged entries of one kind: the count and the lexically first (path, detail).
#[derive(Default)]
struct FlagAgg {
    count: u64,
    samples: BinaryHeap<(Vec<u8>, String)>,
}

impl FlagAgg {
    fn add(&mut self, n: usize, path: &[u8], detail: impl FnOnce() -> String) {
        self.count += 1;
        if self.samples.len() < n || self.samples.peek().is_some_and(|(max, _)| path < max.as_slice()) {
            keep_smallest(&mut self.samples, n, (path.to_vec(), detail()));
        }
    }

    fn merge(&mut self, other: FlagAgg, n: usize) {
        self.count += other.count;
        for s in other.samples {
            keep_smallest(&mut self.samples, n, s);
        }
    }

    fn done(self) -> Flagged {
        Flagged {
            count: self.count,
            samples: self
                .samples
                .into_sorted_vec()
                .into_iter()
                .map(|(p, detail)| FlaggedPath { path: escape(&p), detail })
                .collect(),
        }
    }
}

#[derive(Default)]
struct Agg {
    /// Set-id regular files, files with capabilities, entries that are either (plan only).
    setid: FlagAgg,
    caps: FlagAgg,
    flagged_entries: u64,
    /// Offending inodes with more than one link (plan only).
    links: HashMap<scan::FileId, Linked>,
    by_owner: HashMap<Owner, Class>,
    /// Per root: top-level name -> count.
    by_top: HashMap<usize, HashMap<Vec<u8>, u64>>,
    top_keys: usize,
    top_other: u64,
    /// The lexically first error paths (a max-heap of at most `samples`).
    errors: BinaryHeap<(Vec<u8>, Op, String)>,
    error_count: u64,
    vanished: u64,
    scratch: Vec<u8>,
}

/// Keeps the `n` smallest items in a max-heap.
fn keep_smallest<T: Ord>(heap: &mut BinaryHeap<T>, n: usize, item: T) {
    if heap.len() < n {
        heap.push(item);
    } else if heap.peek().is_some_and(|max| item < *max) {
        heap.pop();
        heap.push(item);
    }
}

impl Agg {
    fn add_top(&mut self, root: usize, name: &[u8], n: u64) {
        let names = self.by_top.entry(root).or_default();
        // Look up by borrowed key first: no allocation for a known top-level entry.
        if let Some(c) = names.get_mut(name) {
            *c += n;
        } else if self.top_keys < MAX_TOP_LEVEL {
            names.insert(name.to_vec(), n);
            self.top_keys += 1;
        } else {
            self.top_other += n;
        }
    }

    fn merge(&mut self, other: Agg, n: usize) {
        for (o, c) in other.by_owner {
            let mine = self.by_owner.entry(o).or_default();
            mine.count += c.count;
            for s in c.samples {
                keep_smallest(&mut mine.samples, n, s);
            }
        }
        for (root, names) in other.by_top {
            for (name, v) in names {
                self.add_top(root, &name, v);
            }
        }
        self.top_other += other.top_other;
        for e in other.errors {
            keep_smallest(&mut self.errors, n, e);
        }
        self.error_count += other.error_count;
        self.vanished += other.vanished;
        self.setid.merge(other.setid, n);
        self.caps.merge(other.caps, n);
        self.flagged_entries += other.flagged_entries;
        for (id, l) in other.links {
            match self.links.get_mut(&id) {
                Some(mine) => {
                    mine.seen += l.seen;
                    mine.nlink = mine.nlink.max(l.nlink);
                    mine.flagged |= l.flagged;
                    if l.first < mine.first {
                        mine.first = l.first;
                    }
                }
                None => {
                    self.links.insert(id, l);
                }
            }
        }
    }

    /// The fix plan from the merged counts, and the offending inodes with several links.
    fn plan(&mut self, opts: &DriftOptions) -> (Option<FixPlan>, SeenLinks) {
        let n = opts.samples;
        let mut outside = FlagAgg::default();
        let mut both = 0u64;
        let mut seen_all = SeenLinks::new();
        for (id, l) in self.links.drain() {
            seen_all.insert(id, (l.nlink, l.seen));
            if l.seen >= l.nlink {
                continue;
            }
            outside.count += u64::from(l.seen);
            let detail = format!("{} links, {} seen here", l.nlink, l.seen);
            keep_smallest(&mut outside.samples, n, (l.first, detail));
            if l.flagged {
                both += u64::from(l.seen);
            }
        }
        let held_setid = if opts.allow_setid { 0 } else { self.flagged_entries };
        let held_links = if opts.include_outside_links { 0 } else { outside.count };
        let overlap = if opts.allow_setid || opts.include_outside_links { 0 } else { both };
        let held = held_setid + held_links - overlap;
        let offending = by_owner_total(self);
        let plan = FixPlan {
            changes: offending.saturating_sub(held),
            held,
            setid: std::mem::take(&mut self.setid).done(),
            capabilities: std::mem::take(&mut self.caps).done(),
            outside_links: outside.done(),
            allow_setid: opts.allow_setid,
            include_outside_links: opts.include_outside_links,
        };
        (Some(plan), seen_all)
    }
}

struct Collector<'a> {
    samples: usize,
    sink: Option<Sink<'a>>,
    workers: Vec<Mutex<Agg>>,
    roots: &'a [PathBuf],
    /// Look at set-id bits, capabilities and links (a fix plan).
    plan: bool,
    system: &'a guard::SystemDirs,
    /// The first system directory the walk reached.
    refused: Mutex<Option<guard::Refused>>,
}

impl Collector<'_> {
    /// What a fix would meet at offending non-directory `e`: set-id bits, capabilities (read
    /// for regular files only), more links than this name.
    fn look_closer(&self, agg: &mut Agg, dir: &DirRef<'_>, e: &scan::Entry<'_>) {
        let mode = u32::from(e.mode);
        let regular = is_regular(mode);
        let setid = regular && setid_cleared_by_chown(mode) != 0;
        let caps = if regular { fix::file_caps(dir, e.name) } else { None };
        if !setid && caps.is_none() && e.nlink <= 1 {
            return;
        }
        let n = self.samples.max(1);
        let mut path = Vec::new();
        dir.write_entry_path(e.name, &mut path);
        if setid {
            agg.setid.add(n, &path, || setid_text(mode));
        }
        if let Some(c) = &caps {
            agg.caps.add(n, &path, || fix::caps_text(c));
        }
        if setid || caps.is_some() {
            agg.flagged_entries += 1;
        }
        if e.nlink > 1 {
            let l = agg.links.entry(e.id).or_insert_with(|| Linked {
                nlink: e.nlink,
                seen: 0,
                flagged: false,
                first: path.clone(),
            });
            l.seen += 1;
            l.nlink = l.nlink.max(e.nlink);
            l.flagged |= setid || caps.is_some();
            if path < l.first {
                l.first = path;
            }
        }
    }
}

impl Visitor for Collector<'_> {
    fn offenders(&self, worker: usize, dir: &DirRef<'_>, entries: &Offenders<'_>) {
        {
            let mut guard = self.workers[worker].lock().unwrap_or_else(|p| p.into_inner());
            let agg = &mut *guard;
            let root = dir.root_index().min(self.roots.len());
            for e in entries.iter() {
                let class = agg.by_owner.entry(e.owner).or_default();
                class.count += 1;
                if self.samples > 0 {
                    agg.scratch.clear();
                    dir.write_entry_path(e.name, &mut agg.scratch);
                    if class.samples.len() < self.samples
                        || class.samples.peek().is_some_and(|max| agg.scratch.as_slice() < max.as_slice())
                    {
                        keep_smallest(&mut class.samples, self.samples, agg.scratch.clone());
                    }
                }
                agg.add_top(root, dir.top_level(e.name), 1);
                if self.plan && !e.is_dir() {
                    self.look_closer(agg, dir, &e);
                }
            }
        }
        if let Some(sink) = self.sink {
            sink(worker, dir, entries);
        }
    }

    fn allow_dir(&self, _worker: usize, dir: &DirRef<'_>, name: &CStr, id: scan::FileId, mount: bool) -> bool {
        match self.system.check_entry(dir.fd(), name, id, mount, || dir.entry_path(name)) {
            Ok(()) => true,
            Err(r) => {
                self.refused.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(r);
                false
            }
        }
    }

    fn problem(&self, worker: usize, problem: Problem) {
        let mut agg = self.workers[worker].lock().unwrap_or_else(|p| p.into_inner());
        if problem.vanished() {
            agg.vanished += 1;
            return;
        }
        agg.error_count += 1;
        let error = std::io::Error::from(problem.errno).to_string();
        use std::os::unix::ffi::OsStrExt;
        let path = problem.path.as_os_str().as_bytes().to_vec();
        keep_smallest(&mut agg.errors, self.samples.max(1), (path, problem.op, error));
    }
}
