//! The two sides of the ordered walk: the consumer, which hands directories out in walk order
//! on the calling thread, and the workers, which read and `statx` them ahead of it.

use std::cmp::Reverse;
use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, RawDir, StatxAttributes, StatxFlags};
use rustix::io::Errno;

use crate::scan::{FileId, Op, PathNode, Problem, StopReason};

use super::{
    DIRENT_BUF, Dir, Event, Job, Listed, MASK, Open, RootStat, Shared, SharedFd, Unread, WINDOW_ENTRIES, WalkStats,
    btime_of, dev_of, lock,
};

enum Step {
    Visit(Vec<u32>),
    End(usize),
}

pub(super) fn consumer(
    shared: &Shared<'_>,
    roots: &[PathBuf],
    root_stats: &[RootStat],
    consume: &mut impl FnMut(Event<'_>) -> ControlFlow<()>,
) {
    let mut stack: Vec<Step> = Vec::new();
    for i in (0..roots.len()).rev() {
        stack.push(Step::End(i));
        stack.push(Step::Visit(vec![i as u32]));
    }
    while let Some(step) = stack.pop() {
        let key = match step {
            Step::End(index) => {
                if consume(Event::RootEnd { index }).is_break() {
                    return;
                }
                continue;
            }
            Step::Visit(k) => k,
        };
        let dir = {
            let mut st = lock(&shared.state);
            st.next = Some(key.clone());
            shared.work.notify_all();
            loop {
                if let Some(d) = st.done.remove(&key) {
                    st.done_entries -= d.entries.len();
                    break Some(d);
                }
                if st.stop.is_some() && !st.running.contains(&key) {
                    break None;
                }
                st = shared.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        shared.work.notify_all();
        let Some(dir) = dir else { return };
        if key.len() == 1 {
            let index = key[0] as usize;
            let ev = Event::Root { index, path: &roots[index], stat: root_stats[index] };
            if consume(ev).is_break() {
                return;
            }
        }
        let children = dir.children;
        if consume(Event::Dir(dir)).is_break() {
            return;
        }
        for i in (0..children).rev() {
            let mut k = key.clone();
            k.push(i);
            stack.push(Step::Visit(k));
        }
    }
}

pub(super) fn worker(shared: &Shared<'_>, total: &std::sync::atomic::AtomicU64) {
    let mut buf = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUF];
    let mut scratch = (Vec::new(), Vec::new());
    loop {
        let job = {
            let mut st = lock(&shared.state);
            loop {
                if st.finished || st.stop.is_some() {
                    return;
                }
                let room = st.done.len() + st.running.len() < shared.window_dirs && st.done_entries < WINDOW_ENTRIES;
                let top_is_next = match (st.heap.peek(), &st.next) {
                    (Some(Reverse(j)), Some(n)) => &j.key == n,
                    _ => false,
                };
                if (room || top_is_next)
                    && let Some(Reverse(j)) = st.heap.pop()
                {
                    st.running.push(j.key.clone());
                    break j;
                }
                st = shared.work.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        if let Some(d) = shared.opts.deadline
            && Instant::now() >= d
        {
            let mut st = lock(&shared.state);
            st.stop.get_or_insert(StopReason::Deadline);
            st.running.retain(|k| *k != job.key);
            drop(st);
            shared.ready.notify_all();
            shared.work.notify_all();
            return;
        }
        let key = job.key.clone();
        let (dir, children, stats) = read_dir(shared, job, &mut buf, &mut scratch);
        let n = stats.entries;
        let seen = total.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(p) = &shared.opts.progress {
            p.entries.fetch_add(n, Ordering::Relaxed);
        }
        let mut st = lock(&shared.state);
        add_stats(&mut st.stats, &stats);
        for c in children {
            st.heap.push(Reverse(c));
        }
        st.running.retain(|k| *k != key);
        st.done_entries += dir.entries.len();
        st.done.insert(key, dir);
        if let Some(max) = shared.opts.max_entries
            && seen >= max
        {
            st.stop.get_or_insert(StopReason::MaxEntries);
        }
        drop(st);
        shared.ready.notify_all();
        shared.work.notify_all();
    }
}

fn add_stats(a: &mut WalkStats, b: &WalkStats) {
    a.entries += b.entries;
    a.directories += b.directories;
    a.unreadable += b.unreadable;
    a.problems += b.problems;
    a.vanished += b.vanished;
    a.excluded += b.excluded;
    a.mount_points += b.mount_points;
}

/// Opens `node` from its root one component at a time, each `O_NOFOLLOW`, and checks it is
/// still inode `id`.
fn reopen_from_root(shared: &Shared<'_>, node: &PathNode, id: FileId) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur: Option<OwnedFd> = None;
    for n in node.chain().iter().skip(1) {
        let name = CString::new(&*n.name).map_err(|_| Errno::INVAL)?;
        let next = match &cur {
            Some(fd) => rustix::fs::openat(fd, &name, flags, Mode::empty())?,
            None => {
                let (root, _) = shared.roots.get(node.root as usize).ok_or(Errno::BADF)?;
                rustix::fs::openat(root, &name, flags, Mode::empty())?
            }
        };
        cur = Some(next);
    }
    let fd = cur.ok_or(Errno::INVAL)?;
    let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO)?;
    if stx.stx_ino != id.ino || dev_of(&stx) != id.dev {
        return Err(Errno::STALE);
    }
    Ok(fd)
}

fn unread(root: usize, node: Arc<PathNode>, why: Unread) -> Dir {
    Dir {
        root,
        node,
        fd: None,
        names: Vec::new(),
        entries: Vec::new(),
        children: 0,
        unread: Some(why),
        problems: Vec::new(),
    }
}

/// Reads one directory: opens it, asks the guard, lists, sorts, `statx`es; returns it, the
/// jobs of its subdirectories and its counts.
fn read_dir(
    shared: &Shared<'_>,
    job: Job,
    buf: &mut [MaybeUninit<u8>],
    (rel, scratch): &mut (Vec<u8>, Vec<u8>),
) -> (Dir, Vec<Job>, WalkStats) {
    let opts = shared.opts;
    let mut stats = WalkStats::default();
    let root = job.node.root as usize;
    let (key, node) = (job.key, job.node);
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let (fd, id) = match job.open {
        Open::Root(fd) => {
            let (_, dev) = shared.roots[root];
            let ino = rustix::fs::statx(&fd.fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO).map_or(0, |s| s.stx_ino);
            (fd, FileId { dev, ino })
        }
        Open::Sub { parent_fd, name, id } => {
            let opened = match &parent_fd {
                Some(p) => rustix::fs::openat(&p.fd, &name, flags, Mode::empty()).and_then(|fd| {
                    // The same directory that was listed (not one renamed into its place).
                    let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO)?;
                    if stx.stx_ino != id.ino || dev_of(&stx) != id.dev { Err(Errno::STALE) } else { Ok(fd) }
                }),
                None => reopen_from_root(shared, &node, id),
            };
            drop(parent_fd);
            match opened {
                Ok(fd) => (Arc::new(SharedFd::new(fd, &shared.open_fds)), id),
                Err(e) => {
                    stats.unreadable += 1;
                    let op =
                        if matches!(e, Errno::NOTDIR | Errno::LOOP | Errno::STALE) { Op::Changed } else { Op::Open };
                    return (unread(root, node, Unread::Error(op, e)), Vec::new(), stats);
                }
            }
        }
    };
    if let Some(g) = shared.guard
        && let Err(why) = g(&node.path(), id)
    {
        stats.unreadable += 1;
        return (unread(root, node, Unread::Refused(why)), Vec::new(), stats);
    }
    stats.directories += 1;
    if opts.exclude.has_path_patterns() {
        node.write_relative(rel);
    }
    // Every name (with its NUL), then sorted by name.
    let mut names: Vec<u8> = Vec::with_capacity(4096);
    let mut spans: Vec<(u32, u32)> = Vec::new();
    let mut dir = RawDir::new(fd.fd.as_fd(), buf);
    let mut read_error = None;
    while let Some(ent) = dir.next() {
        let ent = match ent {
            Ok(e) => e,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        let name = ent.file_name();
        let b = name.to_bytes();
        if b == b"." || b == b".." {
            continue;
        }
        if !opts.exclude.is_empty() && opts.exclude.matches(b, rel, scratch) {
            stats.excluded += 1;
            continue;
        }
        let start = names.len() as u32;
        names.extend_from_slice(name.to_bytes_with_nul());
        spans.push((start, names.len() as u32));
    }
    if let Some(e) = read_error {
        stats.unreadable += 1;
        stats.directories -= 1;
        return (unread(root, node, Unread::Error(Op::Read, e)), Vec::new(), stats);
    }
    spans.sort_unstable_by(|a, b| names[a.0 as usize..a.1 as usize - 1].cmp(&names[b.0 as usize..b.1 as usize - 1]));
    let root_dev = shared.roots[root].1;
    let mut entries = Vec::with_capacity(spans.len());
    let mut problems = Vec::new();
    let mut children = Vec::new();
    for (start, end) in spans {
        let name = CStr::from_bytes_with_nul(&names[start as usize..end as usize]).unwrap_or_default();
        let stx = match rustix::fs::statx(&fd.fd, name, AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT, MASK) {
            Ok(s) => s,
            Err(e) => {
                if e == Errno::NOENT {
                    stats.vanished += 1;
                } else {
                    stats.problems += 1;
                    let mut p = std::os::unix::ffi::OsStringExt::into_vec(node.path().into_os_string());
                    p.push(b'/');
                    p.extend_from_slice(name.to_bytes());
                    problems.push(Problem { path: PathBuf::from(OsStr::from_bytes(&p)), op: Op::Stat, errno: e });
                }
                continue;
            }
        };
        let dev = dev_of(&stx);
        let id = FileId { dev, ino: stx.stx_ino };
        if opts.skip == Some(id) {
            continue;
        }
        stats.entries += 1;
        let mode = u32::from(stx.stx_mode);
        if mode & 0o170000 == 0o040000 {
            let mount_root = stx.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
                && stx.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
            if !opts.cross_mounts && (mount_root || dev != root_dev) {
                stats.mount_points += 1;
            } else {
                children.push((name.to_owned(), id));
            }
        }
        entries.push(Listed {
            start,
            end,
            mode,
            uid: stx.stx_uid,
            gid: stx.stx_gid,
            id,
            nlink: stx.stx_nlink,
            btime: btime_of(&stx),
        });
    }
    let share = shared.open_fds.load(Ordering::Relaxed) < shared.budget;
    let n_children = children.len() as u32;
    let jobs = children
        .into_iter()
        .enumerate()
        .map(|(i, (name, id))| {
            let mut k = Vec::with_capacity(key.len() + 1);
            k.extend_from_slice(&key);
            k.push(i as u32);
            let child = Arc::new(PathNode {
                name: name.to_bytes().into(),
                depth: node.depth + 1,
                root: node.root,
                parent: Some(node.clone()),
            });
            Job { key: k, node: child, open: Open::Sub { parent_fd: share.then(|| fd.clone()), name, id } }
        })
        .collect();
    let dir = Dir {
        root,
        node,
        fd: opts.keep_fds.then_some(fd),
        names,
        entries,
        children: n_children,
        unread: None,
        problems,
    };
    (dir, jobs, stats)
}
