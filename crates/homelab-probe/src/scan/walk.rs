//! The walker's internals: [`scan`] starts the workers, each reads directories with `getdents64`,
//! `statx`es their entries and queues subdirectories and chunks of large directories as jobs on
//! the pool, sharing open descriptors within the budget. Apart from the public types in mod.rs,
//! which are all a visitor sees.

use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, Mode, OFlags, RawDir, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use super::pool::Pool;
use super::{
    CHUNK, DirRef, FileId, Offenders, Op, Owner, PathNode, Problem, Rec, RootError, SPLIT_AFTER, ScanOptions,
    ScanStats, StopReason, Visitor, fd_budget, worker_count,
};

/// Bytes of the per-worker `getdents64` buffer.
const DIRENT_BUF: usize = 64 * 1024;
/// Offending entries handed to the visitor at most in one call.
const BATCH: usize = 1024;

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

// The permission bits (set-id) and the link count come with the same statx: the fix plan needs
// them for the entries it reports, at no cost to the others.
const MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::MODE)
    .union(StatxFlags::NLINK)
    .union(StatxFlags::UID)
    .union(StatxFlags::GID)
    .union(StatxFlags::INO);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut reason = lock(&self.stop_reason);
        // A refusal is the reason that matters, whatever limit was reached before it.
        if why == StopReason::Refused {
            *reason = Some(why);
        } else {
            reason.get_or_insert(why);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the visitor refused a directory: the walk stops and reports nothing more.
    fn refused(&self) -> bool {
        self.stop.load(Ordering::Relaxed) && *lock(&self.stop_reason) == Some(StopReason::Refused)
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
            if ctx.refused() {
                // Nothing more of this directory reaches the visitor (a fixer).
                self.drop_pending();
                return;
            }
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
            if ctx.refused() {
                self.drop_pending();
                return;
            }
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
        if u32::from(stx.stx_mode) & 0o170000 != 0o040000 {
            self.check_entry(ctx, name, &stx);
            return;
        }
        let dev = rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor);
        let mount_root = stx.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && stx.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        let mount = mount_root || dev != ctx.root_dev(node.root);
        let id = FileId { dev, ino: stx.stx_ino };
        // Asked before the directory is reported or descended: a refused one is neither.
        if !ctx.visitor.allow_dir(self.me, &DirRef { node, fd: dirfd }, name, id, mount) {
            ctx.halt(StopReason::Refused);
            return;
        }
        self.check_entry(ctx, name, &stx);
        if !ctx.opts.cross_mounts && mount {
            self.stats.mount_points += 1;
        } else {
            self.dirs_found.push((name.to_owned(), id));
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
        self.recs.push(Rec {
            start,
            end: self.names.len() as u32,
            id,
            owner,
            mode: stx.stx_mode,
            nlink: stx.stx_nlink,
        });
    }

    /// Forgets what was found in the directory being read (the walk was refused).
    fn drop_pending(&mut self) {
        self.recs.clear();
        self.names.clear();
        self.dirs_found.clear();
    }

    fn flush(&mut self, ctx: &Ctx<'_>, node: &PathNode, fd: BorrowedFd<'_>) {
        if self.recs.is_empty() || ctx.refused() {
            self.recs.clear();
            self.names.clear();
            return;
        }
        for part in self.recs.chunks(BATCH) {
            ctx.visitor.offenders(self.me, &DirRef { node, fd }, &Offenders { names: &self.names, recs: part });
        }
        self.recs.clear();
        self.names.clear();
    }
}
