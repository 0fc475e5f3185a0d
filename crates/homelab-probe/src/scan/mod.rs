//! The ownership scanner: walks directory trees in parallel and hands every entry whose owner
//! is not the expected uid/gid to a [`Visitor`]. A facility, not a decision: what counts as a
//! failure, how findings look and how fixes are made live in the drift module and
//! its probe in `check`.
//!
//! How it walks (the shape of bfs and fd, measured in docs/benchmarks.md):
//! - directories are read with `getdents64` ([`rustix::fs::RawDir`]) into one buffer per
//!   worker, reused for every directory;
//! - every entry is `statx`ed relative to its directory's file descriptor with
//!   `AT_SYMLINK_NOFOLLOW` and only `STATX_TYPE | STATX_MODE | STATX_NLINK | STATX_UID |
//!   STATX_GID | STATX_INO` asked for (all in the inode the kernel reads anyway), so no path
//!   is resolved twice and symbolic links are never followed (a link is reported as itself;
//!   loops cannot happen);
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
//!
//! This file is what callers see: the options, the [`Visitor`] and what it is given
//! ([`DirRef`], [`Offenders`], [`Problem`]), and the counts. The workers, their jobs and the
//! descriptor budget are in `walk.rs`.

pub mod escape;
pub mod ordered;
mod pool;
mod walk;

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::fd::BorrowedFd;
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

pub use crate::model::exclude::Exclude;
pub use walk::scan;

/// Entries of one directory `statx`ed by the worker that reads it before the rest is split
/// into [`CHUNK`]-sized jobs.
pub const SPLIT_AFTER: usize = 2048;
/// Names per job when a large directory is split.
pub const CHUNK: usize = 1024;

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
    /// The visitor refused a directory ([`Visitor::allow_dir`]): nothing after it was reported.
    Refused,
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
    /// Hard links to the inode (`stx_nlink`).
    pub nlink: u32,
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
    nlink: u32,
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
            nlink: r.nlink,
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
    /// Directory `name` of `dir`, with identity `id`, before it is reported or descended;
    /// `mount` says it is the root of another mount (another device, or
    /// `STATX_ATTR_MOUNT_ROOT`). Returning false refuses it: it is neither reported nor
    /// descended, and the walk stops ([`StopReason::Refused`]) without reporting anything
    /// more. Asked for every directory below the roots (not for the roots themselves).
    fn allow_dir(&self, worker: usize, dir: &DirRef<'_>, name: &CStr, id: FileId, mount: bool) -> bool {
        let _ = (worker, dir, name, id, mount);
        true
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_count_defaults_to_two_per_cpu() {
        assert_eq!(worker_count(3), 3);
        assert_eq!(worker_count(0) % 2, 0);
    }
}
