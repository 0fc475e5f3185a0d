//! The ownership scanner: walks directory trees in parallel and hands every entry whose owner
//! is not the expected uid/gid to a [`Visitor`]. A facility, not a decision: what counts as a
//! failure, how findings look and how fixes are made live in the drift module and
//! its probe in `check`.
//!
//! How it walks (the shape of bfs and fd, measured in docs/benchmarks.md):
//! - directories are read with `getdents64` ([`rustix::fs::RawDir`]) into one buffer per
//!   worker, reused for every directory;
//! - every entry is `statx`ed relative to its directory's file descriptor with
//!   `AT_SYMLINK_NOFOLLOW` and only `STATX_TYPE | STATX_UID | STATX_GID | STATX_INO`
//!   asked for, so no path is resolved twice and symbolic links are never followed (a link
//!   is reported as itself; loops cannot happen);
//! - subdirectories are opened with `openat(parent, name, O_DIRECTORY | O_NOFOLLOW)`;
//! - nothing is allocated per entry: names stay in the read buffer; a path is built only for
//!   an entry that is reported or an error; one small job is allocated per subdirectory;
//! - directories are jobs on a work-stealing pool (`pool.rs`); a directory with more than
//!   [`SPLIT_AFTER`] entries is split: after that many, its names are copied in chunks of
//!   [`CHUNK`] into jobs that other workers steal and `statx` (at most two queued per worker:
//!   beyond that the reader does a chunk itself, so names never pile up in memory);
//! - the filesystem boundary is the root's: a directory on another device (`stx_dev`) or
//!   marked `STATX_ATTR_MOUNT_ROOT` (a bind mount on the same device) is reported like any
//!   entry but not descended, as `find -xdev` does, unless `cross_mounts`;
//! - file descriptors are bounded: a directory's descriptor is shared with its pending
//!   subdirectory jobs only while fewer than [`fd_budget`] are held; beyond that a
//!   subdirectory is reopened from the root one component at a time (each `O_NOFOLLOW`) and
//!   checked to be the same inode, so a depth-10000 tree never runs out of descriptors;
//! - memory is bounded by the jobs pending (one per directory seen and not yet read), never
//!   by the number of entries.
//!
//! Errors never stop the walk: an unreadable directory (`EACCES`), an entry that vanished
//! between `getdents` and `statx` (`ENOENT`), a directory replaced mid-scan: each is a
//! [`Problem`] given to the visitor with its path, and the walk goes on.

pub mod escape;
mod pool;

use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, Mode, OFlags, RawDir, StatxAttributes, StatxFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use pool::Pool;

pub use crate::model::exclude::Exclude;

/// Entries of one directory `statx`ed by the worker that reads it before the rest is split
/// into [`CHUNK`]-sized jobs.
pub const SPLIT_AFTER: usize = 2048;
/// Names per job when a large directory is split.
pub const CHUNK: usize = 1024;
/// Bytes of the per-worker `getdents64` buffer.
const DIRENT_BUF: usize = 64 * 1024;
/// Offending entries handed to the visitor at most in one call.
const BATCH: usize = 1024;

/// A uid and gid pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// The identity of a file: device and inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    /// Device number (`makedev(stx_dev_major, stx_dev_minor)`).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// Live counters for a progress display, updated by the workers as they go.
#[derive(Debug, Default)]
pub struct Progress {
    /// Entries `statx`ed so far.
    pub entries: AtomicU64,
    /// Offending entries so far.
    pub offending: AtomicU64,
    /// A directory being read recently (updated about ten times a second).
    pub current: Mutex<PathBuf>,
}

/// What to look for and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Entries owned by anything else are reported.
    pub expected: Owner,
    /// Descend into other filesystems and bind mounts under a root.
    pub cross_mounts: bool,
    /// Entries to skip.
    pub exclude: Exclude,
    /// Worker threads; 0 means two per available CPU ([`worker_count`]).
    pub threads: usize,
    /// Stop after about this many entries (checked once per directory).
    pub max_entries: Option<u64>,
    /// Stop when this instant passes (checked once per directory).
    pub deadline: Option<Instant>,
    /// Counters for a progress display.
    pub progress: Option<Arc<Progress>>,
    /// A file never reported (the fix journal, which the fixer itself creates).
    pub skip: Option<FileId>,
}

impl ScanOptions {
    /// Options that report entries not owned by `expected`, with every default.
    pub fn new(expected: Owner) -> Self {
        ScanOptions {
            expected,
            cross_mounts: false,
            exclude: Exclude::default(),
            threads: 0,
            max_entries: None,
            deadline: None,
            progress: None,
            skip: None,
        }
    }
}

/// Why a walk stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// [`ScanOptions::max_entries`] was reached.
    MaxEntries,
    /// [`ScanOptions::deadline`] passed.
    Deadline,
}

/// Counts of one walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Entries examined (the roots included), like the lines `find ROOT` prints.
    pub entries: u64,
    /// Directories read.
    pub directories: u64,
    /// Entries skipped by [`Exclude`] (an excluded directory counts once).
    pub excluded: u64,
    /// Mount points reported but not descended.
    pub mount_points: u64,
    /// Problems given to the visitor.
    pub problems: u64,
    /// Set when the walk stopped early.
    pub stopped: Option<StopReason>,
}

impl ScanStats {
    fn add(&mut self, o: &ScanStats) {
        self.entries += o.entries;
        self.directories += o.directories;
        self.excluded += o.excluded;
        self.mount_points += o.mount_points;
        self.problems += o.problems;
    }
}

/// What failed on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Opening a directory.
    Open,
    /// Reading a directory's entries.
    Read,
    /// `statx` of an entry.
    Stat,
    /// A directory reopened from the root was not the one seen before (replaced mid-scan).
    Changed,
}

/// An error on one path; the walk went on.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The path.
    pub path: PathBuf,
    /// What failed.
    pub op: Op,
    /// The error number.
    pub errno: Errno,
}

impl Problem {
    /// Whether the entry disappeared between being listed and being examined (`ENOENT`),
    /// which a live filesystem does all the time and is not a failure.
    pub fn vanished(&self) -> bool {
        self.errno == Errno::NOENT
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.op {
            Op::Open => "cannot open directory",
            Op::Read => "cannot read directory",
            Op::Stat => "cannot stat",
            Op::Changed => "directory replaced during the scan",
        };
        write!(f, "{}: {what}: {}", escape::escape_path(&self.path), std::io::Error::from(self.errno))
    }
}

/// A directory on the walk, as the visitor sees it: its path and an open descriptor.
pub struct DirRef<'a> {
    node: &'a PathNode,
    fd: BorrowedFd<'a>,
}

impl DirRef<'_> {
    /// The open directory (`O_DIRECTORY | O_NOFOLLOW`), for `*at` calls on its entries.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd
    }

    /// The directory's path.
    pub fn path(&self) -> PathBuf {
        let mut out = Vec::new();
        self.node.write_path(&mut out);
        PathBuf::from(OsStr::from_bytes(&out))
    }

    /// The path of entry `name` of this directory (`.` is the directory itself: a root).
    pub fn entry_path(&self, name: &CStr) -> PathBuf {
        let mut out = Vec::new();
        self.write_entry_path(name, &mut out);
        PathBuf::from(OsStr::from_bytes(&out))
    }

    /// Appends the path of entry `name` to `out` (like [`DirRef::entry_path`], without
    /// allocating when `out` has room).
    pub fn write_entry_path(&self, name: &CStr, out: &mut Vec<u8>) {
        self.node.write_path(out);
        let name = name.to_bytes();
        if name != b"." {
            if !out.ends_with(b"/") {
                out.push(b'/');
            }
            out.extend_from_slice(name);
        }
    }

    /// The root this directory is under.
    pub fn root(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.node.root_node().name))
    }

    /// The first component below the root of entry `name`'s path: the top-level directory
    /// it is in, or its own name when it is directly in the root; `.` for the root itself.
    pub fn top_level<'n>(&'n self, name: &'n CStr) -> &'n [u8] {
        match self.node.depth {
            0 => name.to_bytes(),
            _ => {
                let mut n = self.node;
                while n.depth > 1 {
                    n = n.parent.as_deref().unwrap_or(n);
                }
                &n.name
            }
        }
    }

    /// Index of the root (in the slice given to [`scan`]) this directory is under.
    pub fn root_index(&self) -> usize {
        self.node.root as usize
    }

    /// Depth below the root (0 for a root).
    pub fn depth(&self) -> u32 {
        self.node.depth
    }
}

/// An entry that is not owned by the expected pair.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Its name in the directory (`.` for a root itself).
    pub name: &'a CStr,
    /// Device and inode.
    pub id: FileId,
    /// Owner.
    pub owner: Owner,
    /// `stx_mode`: type and permission bits.
    pub mode: u16,
}

impl Entry<'_> {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        u32::from(self.mode) & 0o170000 == 0o040000
    }
}

/// The offending entries of one directory (or part of one), in the order read.
pub struct Offenders<'a> {
    names: &'a [u8],
    recs: &'a [Rec],
}

#[derive(Debug, Clone, Copy)]
struct Rec {
    start: u32,
    end: u32,
    id: FileId,
    owner: Owner,
    mode: u16,
}

impl<'a> Offenders<'a> {
    /// How many.
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        let names = self.names;
        self.recs.iter().map(move |r| Entry {
            // Each name was stored with its NUL; the fallback cannot happen.
            name: CStr::from_bytes_with_nul(&names[r.start as usize..r.end as usize]).unwrap_or_default(),
            id: r.id,
            owner: r.owner,
            mode: r.mode,
        })
    }
}

/// Receives what the walk finds, from several worker threads at once.
pub trait Visitor: Sync {
    /// A batch of offending entries of directory `dir`; `worker` is the calling worker's
    /// index (0..threads), for per-worker state.
    fn offenders(&self, worker: usize, dir: &DirRef<'_>, entries: &Offenders<'_>);
    /// An error on one path; the walk goes on.
    fn problem(&self, worker: usize, problem: Problem);
}

/// Why a walk could not start.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", escape::escape_path(path))]
pub struct RootError {
    /// The root.
    pub path: PathBuf,
    /// The error (a root must be a directory, and not a symbolic link).
    pub source: std::io::Error,
}

/// The number of worker threads [`scan`] uses for `threads` (0: two per available CPU).
///
/// Two per CPU because a cold cache makes the walk wait on the disk: on 2 cores, 4 workers
/// scan 1M cold files about 15 % faster than 2, and warm they are equal (docs/benchmarks.md).
pub fn worker_count(threads: usize) -> usize {
    if threads > 0 { threads } else { 2 * std::thread::available_parallelism().map_or(1, |n| n.get()) }
}

/// How many directory descriptors the walk keeps open at most for sharing with pending
/// subdirectories: half the soft `RLIMIT_NOFILE` (less a margin), at most 4096.
pub fn fd_budget() -> usize {
    let cur = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024);
    let cur = usize::try_from(cur).unwrap_or(usize::MAX);
    (cur.saturating_sub(64) / 2).clamp(4, 4096)
}

/// Walks `roots` (directories, given as absolute paths without symbolic links, e.g.
/// canonicalized) and gives every entry not owned by `opts.expected` to `visitor`.
pub fn scan(roots: &[PathBuf], opts: &ScanOptions, visitor: &dyn Visitor) -> Result<ScanStats, RootError> {
    let threads = worker_count(opts.threads);
    let mut opened = Vec::with_capacity(roots.len());
    let mut infos = Vec::with_capacity(roots.len());
    for root in roots {
        let err = |source: std::io::Error| RootError { path: root.clone(), source };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, root.as_path(), flags, Mode::empty()).map_err(|e| err(e.into()))?;
        let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW, MASK)
            .map_err(|e| err(e.into()))?;
        let dev = rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor);
        infos.push(RootInfo { fd: fd.try_clone().map_err(err)?, dev });
        opened.push((fd, stx));
    }
    let open_fds = AtomicUsize::new(0);
    let ctx = Ctx {
        opts,
        visitor,
        pool: Pool::new(threads),
        open_fds: &open_fds,
        fd_budget: fd_budget(),
        stop: AtomicBool::new(false),
        stop_reason: Mutex::new(None),
        total: AtomicU64::new(0),
        roots: infos,
        threads,
    };
    let mut stats = ScanStats::default();
    let mut w0 = WorkerState::new(0);
    for (i, (root, (fd, stx))) in roots.iter().zip(opened).enumerate() {
        let node =
            Arc::new(PathNode { parent: None, name: root.as_os_str().as_bytes().into(), depth: 0, root: i as u32 });
        let fd = Arc::new(SharedFd::new(fd, ctx.open_fds));
        // The root itself is an entry, as `find ROOT` prints ROOT.
        w0.stats.entries += 1;
        w0.check_entry(&ctx, c".", &stx);
        w0.flush(&ctx, &node, fd.fd.as_fd());
        ctx.pool.push(0, Job::Read { node, fd });
    }
    let results: Vec<ScanStats> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|me| {
                let ctx = &ctx;
                let mut w =
                    if me == 0 { std::mem::replace(&mut w0, WorkerState::new(0)) } else { WorkerState::new(me) };
                s.spawn(move || {
                    let mut buf = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUF];
                    while let Some(job) = ctx.pool.next(me) {
                        if !ctx.stop.load(Ordering::Relaxed) {
                            w.run(ctx, job, &mut buf);
                        }
                        ctx.pool.done();
                    }
                    w.stats
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    for r in &results {
        stats.add(r);
    }
    stats.stopped = *lock(&ctx.stop_reason);
    Ok(stats)
}

const MASK: StatxFlags = StatxFlags::TYPE.union(StatxFlags::UID).union(StatxFlags::GID).union(StatxFlags::INO);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A directory on the walk: its name and its parent, so a path is built only when needed.
struct PathNode {
    parent: Option<Arc<PathNode>>,
    /// The name in the parent; for a root, the root's whole path.
    name: Box<[u8]>,
    depth: u32,
    root: u32,
}

impl PathNode {
    fn chain(&self) -> Vec<&PathNode> {
        // Iterative: a tree may be thousands of levels deep.
        let mut chain = Vec::with_capacity(self.depth as usize + 1);
        let mut n = Some(self);
        while let Some(x) = n {
            chain.push(x);
            n = x.parent.as_deref();
        }
        chain.reverse();
        chain
    }

    fn write_path(&self, out: &mut Vec<u8>) {
        for (i, n) in self.chain().into_iter().enumerate() {
            if i > 0 && !out.ends_with(b"/") {
                out.push(b'/');
            }
            out.extend_from_slice(&n.name);
        }
    }

    /// The path below the root (`a/b`; empty for the root).
    fn write_relative(&self, out: &mut Vec<u8>) {
        out.clear();
        for n in self.chain().into_iter().skip(1) {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(&n.name);
        }
    }

    fn root_node(&self) -> &PathNode {
        let mut n = self;
        while let Some(p) = n.parent.as_deref() {
            n = p;
        }
        n
    }

    fn path(&self) -> PathBuf {
        let mut out = Vec::new();
        self.write_path(&mut out);
        PathBuf::from(OsStr::from_bytes(&out))
    }
}

/// An open directory shared by the jobs that need it; counted against the budget.
struct SharedFd<'c> {
    fd: OwnedFd,
    counter: &'c AtomicUsize,
}

impl<'c> SharedFd<'c> {
    fn new(fd: OwnedFd, counter: &'c AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        SharedFd { fd, counter }
    }
}

impl Drop for SharedFd<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Job<'c> {
    /// A subdirectory to open, through its parent's descriptor when that was kept.
    Open { parent: Arc<PathNode>, parent_fd: Option<Arc<SharedFd<'c>>>, name: CString, id: FileId },
    /// An open directory to read (a root).
    Read { node: Arc<PathNode>, fd: Arc<SharedFd<'c>> },
    /// Names of a split directory to `statx` (each followed by a NUL); `inflight` counts the
    /// directory's chunks not yet done.
    Chunk { node: Arc<PathNode>, fd: Arc<SharedFd<'c>>, names: Vec<u8>, inflight: Arc<AtomicUsize> },
}

struct RootInfo {
    fd: OwnedFd,
    dev: u64,
}

struct Ctx<'c> {
    opts: &'c ScanOptions,
    visitor: &'c dyn Visitor,
    pool: Pool<Job<'c>>,
    open_fds: &'c AtomicUsize,
    fd_budget: usize,
    stop: AtomicBool,
    stop_reason: Mutex<Option<StopReason>>,
    total: AtomicU64,
    roots: Vec<RootInfo>,
    threads: usize,
}

impl Ctx<'_> {
    fn halt(&self, why: StopReason) {
        self.stop.store(true, Ordering::Relaxed);
        lock(&self.stop_reason).get_or_insert(why);
    }

    fn root_dev(&self, root: u32) -> u64 {
        self.roots.get(root as usize).map_or(0, |r| r.dev)
    }
}

struct WorkerState {
    me: usize,
    stats: ScanStats,
    names: Vec<u8>,
    recs: Vec<Rec>,
    rel: Vec<u8>,
    scratch: Vec<u8>,
    /// Subdirectories found in the directory being read: (name, id).
    dirs_found: Vec<(CString, FileId)>,
    reported_entries: u64,
    reported_offending: u64,
    offending: u64,
    last_progress: Option<Instant>,
}

impl WorkerState {
    fn new(me: usize) -> Self {
        WorkerState {
            me,
            stats: ScanStats::default(),
            names: Vec::new(),
            recs: Vec::new(),
            rel: Vec::new(),
            scratch: Vec::new(),
            dirs_found: Vec::new(),
            reported_entries: 0,
            reported_offending: 0,
            offending: 0,
            last_progress: None,
        }
    }

    fn problem(&mut self, ctx: &Ctx<'_>, path: PathBuf, op: Op, errno: Errno) {
        self.stats.problems += 1;
        ctx.visitor.problem(self.me, Problem { path, op, errno });
    }

    fn run<'c>(&mut self, ctx: &Ctx<'c>, job: Job<'c>, buf: &mut [MaybeUninit<u8>]) {
        if let Some(d) = ctx.opts.deadline
            && Instant::now() >= d
        {
            ctx.halt(StopReason::Deadline);
            return;
        }
        let before = self.stats.entries;
        match job {
            Job::Open { parent, parent_fd, name, id } => {
                if let Some((node, fd)) = self.open(ctx, parent, parent_fd, &name, id) {
                    self.read(ctx, node, Arc::new(SharedFd::new(fd, ctx.open_fds)), buf);
                }
            }
            Job::Read { node, fd } => self.read(ctx, node, fd, buf),
            Job::Chunk { node, fd, names, inflight } => {
                self.prepare_rel(ctx, &node);
                self.visit_chunk(ctx, &node, &fd, &names);
                inflight.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let n = self.stats.entries - before;
        if let Some(max) = ctx.opts.max_entries
            && ctx.total.fetch_add(n, Ordering::Relaxed) + n >= max
        {
            ctx.halt(StopReason::MaxEntries);
        }
        self.report_progress(ctx, None);
    }

    fn report_progress(&mut self, ctx: &Ctx<'_>, dir: Option<&PathNode>) {
        let Some(p) = &ctx.opts.progress else { return };
        p.entries.fetch_add(self.stats.entries - self.reported_entries, Ordering::Relaxed);
        self.reported_entries = self.stats.entries;
        p.offending.fetch_add(self.offending - self.reported_offending, Ordering::Relaxed);
        self.reported_offending = self.offending;
        if let Some(dir) = dir {
            let now = Instant::now();
            if self.last_progress.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(100)) {
                self.last_progress = Some(now);
                if let Ok(mut cur) = p.current.try_lock() {
                    *cur = dir.path();
                }
            }
        }
    }

    fn open(
        &mut self,
        ctx: &Ctx<'_>,
        parent: Arc<PathNode>,
        parent_fd: Option<Arc<SharedFd<'_>>>,
        name: &CStr,
        id: FileId,
    ) -> Option<(Arc<PathNode>, OwnedFd)> {
        let node = Arc::new(PathNode {
            name: name.to_bytes().into(),
            depth: parent.depth + 1,
            root: parent.root,
            parent: Some(parent),
        });
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let opened = match &parent_fd {
            Some(pfd) => rustix::fs::openat(&pfd.fd, name, flags, Mode::empty()),
            None => self.reopen_from_root(ctx, &node, id),
        };
        drop(parent_fd);
        match opened {
            Ok(fd) => Some((node, fd)),
            Err(e) => {
                // ENOTDIR/ELOOP: replaced by a file or a symbolic link since it was listed.
                let op = if e == Errno::NOTDIR || e == Errno::LOOP { Op::Changed } else { Op::Open };
                self.problem(ctx, node.path(), op, e);
                None
            }
        }
    }

    /// Opens `node` from its root one component at a time, each `O_NOFOLLOW`, holding at most
    /// two descriptors, and checks it is still inode `id`.
    fn reopen_from_root(&mut self, ctx: &Ctx<'_>, node: &PathNode, id: FileId) -> rustix::io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let chain = node.chain();
        let mut cur: Option<OwnedFd> = None;
        for n in chain.iter().skip(1) {
            let name = CString::new(&*n.name).map_err(|_| Errno::INVAL)?;
            let next = match &cur {
                Some(fd) => rustix::fs::openat(fd, &name, flags, Mode::empty())?,
                None => {
                    let root = ctx.roots.get(node.root as usize).ok_or(Errno::BADF)?;
                    rustix::fs::openat(&root.fd, &name, flags, Mode::empty())?
                }
            };
            cur = Some(next);
        }
        let fd = cur.ok_or(Errno::INVAL)?;
        let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO)?;
        if stx.stx_ino != id.ino || rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor) != id.dev {
            return Err(Errno::STALE);
        }
        Ok(fd)
    }

    fn prepare_rel(&mut self, ctx: &Ctx<'_>, node: &PathNode) {
        if ctx.opts.exclude.has_path_patterns() {
            node.write_relative(&mut self.rel);
        }
    }

    fn read<'c>(&mut self, ctx: &Ctx<'c>, node: Arc<PathNode>, fd: Arc<SharedFd<'c>>, buf: &mut [MaybeUninit<u8>]) {
        self.stats.directories += 1;
        self.prepare_rel(ctx, &node);
        self.report_progress(ctx, Some(&node));
        let mut seen = 0usize;
        let mut chunk: Option<(Vec<u8>, usize)> = None;
        let split = ctx.threads > 1;
        // Chunks of this directory queued and not yet done: the reader outruns the `statx`
        // workers, so beyond a few per worker it does a chunk itself. Memory stays bounded
        // however many entries one directory has.
        let inflight = Arc::new(AtomicUsize::new(0));
        let max_inflight = 2 * ctx.threads;
        let mut dir = RawDir::new(fd.fd.as_fd(), buf);
        while let Some(ent) = dir.next() {
            let ent = match ent {
                Ok(e) => e,
                Err(e) => {
                    self.problem(ctx, node.path(), Op::Read, e);
                    break;
                }
            };
            let name = ent.file_name();
            let b = name.to_bytes();
            if b == b"." || b == b".." {
                continue;
            }
            if let Some((names, n)) = &mut chunk {
                names.extend_from_slice(name.to_bytes_with_nul());
                *n += 1;
                if *n == CHUNK {
                    *n = 0;
                    if inflight.load(Ordering::Relaxed) >= max_inflight {
                        self.visit_chunk(ctx, &node, &fd, names);
                        names.clear();
                    } else {
                        let names = std::mem::replace(names, Vec::with_capacity(CHUNK * 24));
                        inflight.fetch_add(1, Ordering::Relaxed);
                        let job = Job::Chunk { node: node.clone(), fd: fd.clone(), names, inflight: inflight.clone() };
                        ctx.pool.push(self.me, job);
                    }
                }
                continue;
            }
            self.visit(ctx, &node, fd.fd.as_fd(), name);
            seen += 1;
            if seen == SPLIT_AFTER && split {
                chunk = Some((Vec::with_capacity(CHUNK * 24), 0));
                // Hand over what is found so far, so stealers can start on it.
                self.flush(ctx, &node, fd.fd.as_fd());
                self.push_dirs(ctx, &node, &fd);
            }
        }
        if let Some((names, n)) = chunk
            && n > 0
        {
            self.visit_chunk(ctx, &node, &fd, &names);
        }
        self.flush(ctx, &node, fd.fd.as_fd());
        self.push_dirs(ctx, &node, &fd);
    }

    fn visit_chunk<'c>(&mut self, ctx: &Ctx<'c>, node: &Arc<PathNode>, fd: &Arc<SharedFd<'c>>, names: &[u8]) {
        for name in names.split_inclusive(|&b| b == 0) {
            let name = CStr::from_bytes_with_nul(name).unwrap_or_default();
            self.visit(ctx, node, fd.fd.as_fd(), name);
        }
        self.flush(ctx, node, fd.fd.as_fd());
        self.push_dirs(ctx, node, fd);
    }

    fn push_dirs<'c>(&mut self, ctx: &Ctx<'c>, node: &Arc<PathNode>, fd: &Arc<SharedFd<'c>>) {
        if self.dirs_found.is_empty() {
            return;
        }
        let share = ctx.open_fds.load(Ordering::Relaxed) < ctx.fd_budget;
        // Pushed in reverse so that this worker, popping from the back, walks them in
        // directory order.
        for (name, id) in self.dirs_found.drain(..).rev() {
            let parent_fd = share.then(|| fd.clone());
            ctx.pool.push(self.me, Job::Open { parent: node.clone(), parent_fd, name, id });
        }
    }

    fn visit(&mut self, ctx: &Ctx<'_>, node: &PathNode, dirfd: BorrowedFd<'_>, name: &CStr) {
        if !ctx.opts.exclude.is_empty() && ctx.opts.exclude.matches(name.to_bytes(), &self.rel, &mut self.scratch) {
            self.stats.excluded += 1;
            return;
        }
        let stx = match rustix::fs::statx(dirfd, name, AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT, MASK) {
            Ok(s) => s,
            Err(e) => {
                let mut path = Vec::new();
                node.write_path(&mut path);
                path.push(b'/');
                path.extend_from_slice(name.to_bytes());
                self.problem(ctx, PathBuf::from(OsStr::from_bytes(&path)), Op::Stat, e);
                return;
            }
        };
        self.stats.entries += 1;
        self.check_entry(ctx, name, &stx);
        if u32::from(stx.stx_mode) & 0o170000 == 0o040000 {
            let dev = rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor);
            let mount_root = stx.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && stx.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
            if !ctx.opts.cross_mounts && (mount_root || dev != ctx.root_dev(node.root)) {
                self.stats.mount_points += 1;
            } else {
                self.dirs_found.push((name.to_owned(), FileId { dev, ino: stx.stx_ino }));
            }
        }
    }

    fn check_entry(&mut self, ctx: &Ctx<'_>, name: &CStr, stx: &rustix::fs::Statx) {
        let owner = Owner { uid: stx.stx_uid, gid: stx.stx_gid };
        if owner == ctx.opts.expected {
            return;
        }
        let id = FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino };
        if ctx.opts.skip == Some(id) {
            return;
        }
        self.offending += 1;
        let start = self.names.len() as u32;
        self.names.extend_from_slice(name.to_bytes_with_nul());
        self.recs.push(Rec { start, end: self.names.len() as u32, id, owner, mode: stx.stx_mode });
    }

    fn flush(&mut self, ctx: &Ctx<'_>, node: &PathNode, fd: BorrowedFd<'_>) {
        if self.recs.is_empty() {
            return;
        }
        for part in self.recs.chunks(BATCH) {
            ctx.visitor.offenders(self.me, &DirRef { node, fd }, &Offenders { names: &self.names, recs: part });
        }
        self.recs.clear();
        self.names.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_count_defaults_to_two_per_cpu() {
        assert_eq!(worker_count(3), 3);
        assert_eq!(worker_count(0) % 2, 0);
    }
}
