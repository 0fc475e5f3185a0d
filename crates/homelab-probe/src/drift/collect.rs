//! The drift walk's collector: what each worker aggregates while [`crate::scan`] walks, and
//! how the aggregates become a [`DriftReport`].

use std::collections::{BinaryHeap, HashMap};
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use crate::scan::escape::escape;
use crate::scan::{self, Problem, ScanOptions, Visitor};

use super::{
    DirRef, DriftError, DriftOptions, DriftReport, ErrorSample, Exclude, FixPlan, Flagged, FlaggedPath, MAX_TOP_LEVEL,
    Offenders, Op, Owner, OwnerCount, SeenLinks, Sink, TopLevelCount, escape_path, fix, guard, is_regular,
    setid_cleared_by_chown, setid_text,
};

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
