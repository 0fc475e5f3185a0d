//! The ordered walk: every directory's entries, names sorted bytewise, handed to one consumer
//! in depth-first pre-order, while worker threads read and `statx` the directories ahead of
//! it. The baseline takes, checks and restores with it: taking writes the stream in this
//! order, checking merges the live walk with the recorded stream, so neither side holds more
//! than a bounded window of directories.
//!
//! How (docs/architecture.md has the picture, docs/benchmarks.md the measurements):
//! - a directory is a job keyed by its position in the walk: the index path from the root
//!   (`[root, 3, 0, 12]`: the 13th subdirectory of the first subdirectory of the 4th ...);
//!   comparing keys compares walk order;
//! - workers take the smallest key first (a binary heap), so they work near the consumer,
//!   depth first; a worker reads the whole directory (`getdents64`), sorts the names, `statx`es
//!   each entry relative to the directory's descriptor (`AT_SYMLINK_NOFOLLOW`) and queues its
//!   subdirectories (`openat(O_DIRECTORY | O_NOFOLLOW)` later, from the parent's descriptor);
//! - finished directories wait in a window for the consumer; the window is bounded (directories
//!   and entries), except for the one directory the consumer waits for, which a worker may
//!   always take: the consumer's next directory is the smallest key not yet consumed, so it is
//!   at the top of the heap or running, and the walk cannot deadlock;
//! - the consumer pops keys from a stack (depth first) and receives each directory once, on
//!   the calling thread;
//! - symbolic links are never followed, the walk stays on each root's filesystem unless asked
//!   (like `scan`), and descriptors are bounded as in `scan` (a subdirectory job shares its
//!   parent's descriptor only while fewer than [`super::fd_budget`] are open; beyond that it
//!   is reopened from the root one `O_NOFOLLOW` component at a time);
//! - memory is O(window + the largest directory + depth); a directory's names must be held to
//!   be sorted.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::{CStr, CString};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, Mode, OFlags, StatxFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::{Exclude, FileId, Op, PathNode, Problem, Progress, RootError, StopReason, fd_budget, worker_count};

mod threads;

use threads::{consumer, worker};

/// Directories finished ahead of the consumer, at most.
const WINDOW_DIRS: usize = 2048;
/// Entries in directories finished ahead of the consumer, at most (about 60 bytes each).
const WINDOW_ENTRIES: usize = 1 << 17;
/// `getdents64` buffer per worker.
const DIRENT_BUF: usize = 64 * 1024;

const MASK: StatxFlags = StatxFlags::TYPE
    .union(StatxFlags::MODE)
    .union(StatxFlags::UID)
    .union(StatxFlags::GID)
    .union(StatxFlags::INO)
    .union(StatxFlags::NLINK)
    .union(StatxFlags::BTIME);

/// How to walk.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Descend into other filesystems and bind mounts under a root.
    pub cross_mounts: bool,
    /// Entries to leave out (not listed, not descended).
    pub exclude: Exclude,
    /// Worker threads; 0: two per CPU ([`worker_count`]).
    pub threads: usize,
    /// Stop after about this many entries.
    pub max_entries: Option<u64>,
    /// Stop when this instant passes.
    pub deadline: Option<Instant>,
    /// A file never listed (the output or journal the caller itself writes under a root).
    pub skip: Option<FileId>,
    /// Hand each directory to the consumer with its open descriptor (to change its entries).
    pub keep_fds: bool,
    /// Counters for a progress display.
    pub progress: Option<Arc<Progress>>,
}

/// Asked before a directory's entries are read (every root and every directory): `Err` with
/// the reason refuses it (not read, not descended, the consumer sees the refusal).
pub type Guard<'g> = &'g (dyn Fn(&Path, FileId) -> Result<(), String> + Sync);

/// Counts of one walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkStats {
    /// Entries listed, the roots included.
    pub entries: u64,
    /// Directories read.
    pub directories: u64,
    /// Directories that could not be opened or read, or were refused.
    pub unreadable: u64,
    /// Entries that could not be examined (not counting vanished ones).
    pub problems: u64,
    /// Entries that disappeared between being listed and examined.
    pub vanished: u64,
    /// Entries left out by the exclude globs.
    pub excluded: u64,
    /// Directories on another filesystem, listed but not descended.
    pub mount_points: u64,
    /// Set when the walk stopped early.
    pub stopped: Option<StopReason>,
}

/// One entry of a [`Dir`], from its `statx`.
#[derive(Debug, Clone, Copy)]
pub struct Listed {
    start: u32,
    end: u32,
    /// `stx_mode`: type and permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Device and inode.
    pub id: FileId,
    /// Hard links to the inode.
    pub nlink: u32,
    /// Birth time (seconds, nanoseconds), when the filesystem keeps one: with device and inode,
    /// the identity a journal records (ext4 reuses inode numbers at once).
    pub btime: Option<(i64, u32)>,
}

impl Listed {
    /// An entry that was not listed by a walk (the root itself, a test's).
    pub fn new(mode: u32, uid: u32, gid: u32, id: FileId, nlink: u32, btime: Option<(i64, u32)>) -> Self {
        Listed { start: 0, end: 0, mode, uid, gid, id, nlink, btime }
    }
}

fn btime_of(stx: &rustix::fs::Statx) -> Option<(i64, u32)> {
    (stx.stx_mask & StatxFlags::BTIME.bits() != 0).then_some((stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec))
}

/// The root directory itself, as the consumer sees it first.
#[derive(Debug, Clone, Copy)]
pub struct RootStat {
    /// `stx_mode`.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Device and inode.
    pub id: FileId,
    /// Birth time, when the filesystem keeps one.
    pub btime: Option<(i64, u32)>,
}

/// Why a directory's entries are not listed.
#[derive(Debug, Clone)]
pub enum Unread {
    /// Opening or reading it failed.
    Error(Op, Errno),
    /// The guard refused it.
    Refused(String),
}

/// One directory of the walk: its path, its entries sorted by name, and (with
/// [`WalkOptions::keep_fds`]) its open descriptor.
pub struct Dir {
    root: usize,
    node: Arc<PathNode>,
    fd: Option<Arc<SharedFd>>,
    names: Vec<u8>,
    entries: Vec<Listed>,
    children: u32,
    /// Set when the entries could not be listed.
    pub unread: Option<Unread>,
    /// Entries that could not be examined (they are not listed).
    pub problems: Vec<Problem>,
}

impl Dir {
    /// Index of the root (in the slice given to [`walk`]).
    pub fn root_index(&self) -> usize {
        self.root
    }

    /// The directory's path (the root's path joined with the components).
    pub fn path(&self) -> PathBuf {
        self.node.path()
    }

    /// The path's components below the root (empty for the root).
    pub fn components(&self) -> Vec<&[u8]> {
        self.node.chain().into_iter().skip(1).map(|n| &*n.name).collect()
    }

    /// The open directory, when the walk kept it.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.fd.as_fd())
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `i`: its name (with the NUL, for `*at` calls) and what `statx` said.
    pub fn entry(&self, i: usize) -> Option<(&CStr, &Listed)> {
        let e = self.entries.get(i)?;
        let name = CStr::from_bytes_with_nul(&self.names[e.start as usize..e.end as usize]).unwrap_or_default();
        Some((name, e))
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&CStr, &Listed)> + Clone + '_ {
        (0..self.entries.len()).filter_map(|i| self.entry(i))
    }
}

/// What the consumer receives, in walk order.
pub enum Event<'a> {
    /// Root `index` starts: its path and the root directory's own stat.
    Root {
        /// Index in the roots given to [`walk`].
        index: usize,
        /// The root.
        path: &'a Path,
        /// Its stat.
        stat: RootStat,
    },
    /// A directory (the root's own first); the consumer may keep it (and its descriptor).
    Dir(Dir),
    /// Root `index` ends.
    RootEnd {
        /// Index in the roots given to [`walk`].
        index: usize,
    },
}

/// An open directory shared by the jobs that need it; counted against the budget.
pub(super) struct SharedFd {
    fd: OwnedFd,
    counter: Arc<AtomicUsize>,
}

impl SharedFd {
    fn new(fd: OwnedFd, counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        SharedFd { fd, counter: counter.clone() }
    }
}

impl Drop for SharedFd {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

enum Open {
    /// A root, opened by [`walk`].
    Root(Arc<SharedFd>),
    /// A subdirectory, through its parent's descriptor when that was kept.
    Sub { parent_fd: Option<Arc<SharedFd>>, name: CString, id: FileId },
}

struct Job {
    key: Vec<u32>,
    node: Arc<PathNode>,
    open: Open,
}

impl PartialEq for Job {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Job {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Reverse<Job>>,
    done: HashMap<Vec<u32>, Dir>,
    done_entries: usize,
    running: Vec<Vec<u32>>,
    /// The key the consumer waits for.
    next: Option<Vec<u32>>,
    /// The consumer is finished (or stopped): workers leave.
    finished: bool,
    stop: Option<StopReason>,
    stats: WalkStats,
}

struct Shared<'a> {
    state: Mutex<State>,
    work: Condvar,
    ready: Condvar,
    opts: &'a WalkOptions,
    guard: Option<Guard<'a>>,
    roots: Vec<(OwnedFd, u64)>,
    open_fds: Arc<AtomicUsize>,
    budget: usize,
    window_dirs: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn dev_of(stx: &rustix::fs::Statx) -> u64 {
    rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor)
}

/// Walks `roots` (absolute directories, already validated by the caller) and hands every
/// directory to `consume` on the calling thread, in walk order. `consume` may stop the walk
/// with `ControlFlow::Break`. Returns the counts; a root that cannot be opened is an error
/// before anything is walked.
pub fn walk(
    roots: &[PathBuf],
    opts: &WalkOptions,
    guard: Option<Guard<'_>>,
    mut consume: impl FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<WalkStats, RootError> {
    let mut opened = Vec::with_capacity(roots.len());
    for r in roots {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, r.as_path(), flags, Mode::empty())
            .map_err(|e| RootError { path: r.clone(), source: e.into() })?;
        let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, MASK)
            .map_err(|e| RootError { path: r.clone(), source: e.into() })?;
        opened.push((fd, stx));
    }
    let threads = worker_count(opts.threads);
    let budget = fd_budget();
    let open_fds = Arc::new(AtomicUsize::new(0));
    let mut root_fds = Vec::with_capacity(opened.len());
    let mut root_stats = Vec::with_capacity(opened.len());
    let mut jobs = Vec::with_capacity(opened.len());
    for (i, (root, (fd, stx))) in roots.iter().zip(opened).enumerate() {
        let dev = dev_of(&stx);
        // The root's descriptor twice: one kept for reopening from the root, one for its job.
        let job_fd = rustix::io::dup(&fd).map_err(|e| RootError { path: root.clone(), source: e.into() })?;
        root_fds.push((fd, dev));
        root_stats.push(RootStat {
            mode: u32::from(stx.stx_mode),
            uid: stx.stx_uid,
            gid: stx.stx_gid,
            id: FileId { dev, ino: stx.stx_ino },
            btime: btime_of(&stx),
        });
        let node =
            Arc::new(PathNode { parent: None, name: root.as_os_str().as_bytes().into(), depth: 0, root: i as u32 });
        jobs.push(Job { key: vec![i as u32], node, open: Open::Root(Arc::new(SharedFd::new(job_fd, &open_fds))) });
    }
    let window_dirs = if opts.keep_fds { (budget / 4).clamp(4, WINDOW_DIRS) } else { WINDOW_DIRS };
    let shared = Shared {
        state: Mutex::new(State::default()),
        work: Condvar::new(),
        ready: Condvar::new(),
        opts,
        guard,
        roots: root_fds,
        open_fds,
        budget,
        window_dirs,
    };
    {
        let mut st = lock(&shared.state);
        st.stats.entries = roots.len() as u64;
        for j in jobs {
            st.heap.push(Reverse(j));
        }
    }
    let total = std::sync::atomic::AtomicU64::new(roots.len() as u64);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (shared, total) = (&shared, &total);
            s.spawn(move || worker(shared, total));
        }
        consumer(&shared, roots, &root_stats, &mut consume);
        let mut st = lock(&shared.state);
        st.finished = true;
        drop(st);
        shared.work.notify_all();
    });
    let st = shared.state.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut stats = st.stats;
    stats.stopped = st.stop;
    Ok(stats)
}
