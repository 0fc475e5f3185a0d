//! File-ownership drift: which entries under a data root are not owned by the expected
//! uid/gid, summarised for a person ([`DriftReport`]), and the safe fix with its undo journal
//! ([`fix`], [`journal`]).
//!
//! The walk itself is [`crate::scan`]; this module decides what a report holds and how roots
//! are validated. The probe that turns a report into findings is `check`'s drift probe.
//!
//! Roots are validated before anything is read (`prepare_roots`): they must exist and be
//! directories, `/` is refused (system files belong to root: a drift check of `/` against one
//! owner means a typo), nested roots are walked once. For a fix, a root named through a
//! symbolic link or with a `..` component is refused too: the fix must change only what the
//! user named, so the user must name the real directory.

pub(crate) mod entry;
pub mod fix;
pub mod guard;
#[doc(hidden)]
pub mod journal;

use std::collections::{BinaryHeap, HashMap};
use std::path::{Component, Path, PathBuf};
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
        }
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

/// Checks and normalises `roots`: each must be an existing directory, `/` is refused, roots
/// inside another root are dropped. With `for_fix`, a root named through a symbolic link or
/// with `.`/`..` components is refused (the error names the real directory to use instead).
/// Returns absolute paths without symbolic links.
pub(crate) fn prepare_roots(roots: &[PathBuf], for_fix: bool) -> Result<Vec<PathBuf>, DriftError> {
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
        if real == Path::new("/") {
            return Err(bad(
                "refusing to scan or fix `/`: system files belong to root; name the data directory (e.g. /mnt/media)"
                    .into(),
            ));
        }
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
    /// What a fix did, when one was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<fix::FixSummary>,
}

impl DriftReport {
    /// True when every entry has the expected owner and every directory could be read.
    pub fn clean(&self) -> bool {
        self.offending == 0 && self.errors == 0 && self.stats.stopped.is_none()
    }

    /// The run's verdict (`drift`'s exit status 0): without a fix, [`DriftReport::clean`];
    /// after an applied fix, every planned change was made, every directory could be read and
    /// the scan was not cut short (what the fix found offending now has the expected owner).
    pub fn ok(&self) -> bool {
        match &self.fix {
            Some(f) => f.failed == 0 && self.errors == 0 && self.stats.stopped.is_none(),
            None => self.clean(),
        }
    }
}

/// A hook that sees every batch of offending entries with their open directory (the fixer,
/// or a printer of every path).
pub type Sink<'a> = &'a (dyn Fn(usize, &DirRef<'_>, &Offenders<'_>) + Sync);

/// Scans `opts.roots` (already prepared or not: they are prepared here for a scan)
/// and returns the report. `sink` sees every offending entry too.
pub fn scan(opts: &DriftOptions, sink: Option<Sink<'_>>) -> Result<DriftReport, DriftError> {
    let roots = prepare_roots(&opts.roots, false)?;
    scan_prepared(&roots, opts, None, sink)
}

pub(crate) fn scan_prepared(
    roots: &[PathBuf],
    opts: &DriftOptions,
    skip: Option<scan::FileId>,
    sink: Option<Sink<'_>>,
) -> Result<DriftReport, DriftError> {
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
    };
    let stats = scan::scan(roots, &so, &collector).map_err(|e| DriftError::Root {
        path: e.path.clone(),
        message: format!("cannot use as a root: {}", e.source),
    })?;
    let mut all = Agg::default();
    for w in collector.workers {
        all.merge(w.into_inner().unwrap_or_else(|p| p.into_inner()), opts.samples);
    }
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
    Ok(DriftReport {
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
        fix: None,
    })
}

fn sorted_samples(heap: BinaryHeap<Vec<u8>>) -> Vec<String> {
    heap.into_sorted_vec().iter().map(|p| escape(p)).collect()
}

#[derive(Default)]
struct Class {
    count: u64,
    samples: BinaryHeap<Vec<u8>>,
}

#[derive(Default)]
struct Agg {
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
    }
}

struct Collector<'a> {
    samples: usize,
    sink: Option<Sink<'a>>,
    workers: Vec<Mutex<Agg>>,
    roots: &'a [PathBuf],
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
            }
        }
        if let Some(sink) = self.sink {
            sink(worker, dir, entries);
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
