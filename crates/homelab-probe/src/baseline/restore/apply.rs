//! Making a restore's changes (`--apply`), on worker threads (one per CPU) while the walk and
//! the merge go on. The plan's changes go to the workers in parts: at most [`BATCH_DIRS`]
//! directories, and as many changes as the descriptor limit lets each worker hold open
//! ([`part_changes`]). A worker checks each change of its part on the inode ([`check_one`]),
//! appends the part's records to the journal and syncs it, and only then makes the changes,
//! through the descriptors it checked ([`apply_one`]). Records of different parts may
//! interleave in the journal: each stands alone (an inode is planned once, hard links
//! included), and undo needs no order.
//!
//! docs/benchmarks.md has the measurements: per change, the `openat(O_PATH)`, `statx`,
//! capability read, `fchownat` and `close` cost about 2.5 times chown's one `fchownat`, so the
//! changes are spread over the CPUs.

use std::ffi::CString;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::StatxFlags;
use rustix::io::Errno;

use super::{LISTED, perm_of};
use crate::drift::entry;
use crate::drift::journal::{self, Record};
use crate::scan::ordered::{Dir, Listed};

/// Directories whose changes are journaled (and synced) together.
const BATCH_DIRS: usize = 64;
/// Changes journaled together, at most: each holds its entry's descriptor from its check to
/// its change, so fewer where the descriptor limit is lower ([`part_changes`]).
const BATCH_CHANGES: usize = 4096;

/// One change the plan makes, waiting for its part's journal sync.
pub(super) struct Planned {
    pub(super) name: CString,
    /// The escaped path (the journal's and the messages').
    pub(super) path: String,
    pub(super) listed: Listed,
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Permission bits to set (`None` for a symbolic link).
    pub(super) perm: Option<u32>,
}

/// How many changes a worker may hold open: the `threads` workers share half of the soft
/// `RLIMIT_NOFILE` left over by the walk's directory budget ([`crate::scan::fd_budget`]),
/// after raising the soft limit towards the hard one (as many programs do; the default soft
/// limit of 1024 exists for `select`, unused here). Fewer changes per part mean more journal
/// syncs.
pub(super) fn part_changes(threads: usize) -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let threads = threads.max(1);
    let want = (4 * threads * BATCH_CHANGES + 64) as u64;
    let lim = getrlimit(Resource::Nofile);
    let cur = lim.current.unwrap_or(u64::MAX);
    if cur < want {
        let raised = lim.maximum.map_or(want, |m| m.min(want));
        if raised > cur {
            // Best effort: on failure the parts are only smaller.
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(raised), maximum: lim.maximum });
        }
    }
    let cur = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let cur = usize::try_from(cur).unwrap_or(usize::MAX);
    let rest = cur.saturating_sub(64).saturating_sub(crate::scan::fd_budget());
    (rest / 2 / threads).clamp(16, BATCH_CHANGES)
}

/// A part of the plan: its place in the walk (messages are listed in walk order), and its
/// directories with their changes (a directory with more changes than a part holds is shared
/// by several parts).
pub(super) struct Part {
    seq: u64,
    dirs: Vec<(Arc<Dir>, Vec<Planned>)>,
}

/// Gathers the plan's changes into parts and hands each to the workers.
pub(super) struct Pool {
    tx: Option<SyncSender<Part>>,
    part: Part,
    changes: usize,
    max_changes: usize,
}

impl Pool {
    pub(super) fn new(tx: SyncSender<Part>, max_changes: usize) -> Self {
        Pool { tx: Some(tx), part: Part { seq: 0, dirs: Vec::new() }, changes: 0, max_changes: max_changes.max(1) }
    }

    /// The changes of one directory (`dir` keeps its descriptor until they are made).
    pub(super) fn add(&mut self, dir: Dir, mut changes: Vec<Planned>) {
        let dir = Arc::new(dir);
        while !changes.is_empty() {
            let room = self.max_changes - self.changes;
            let rest = if changes.len() > room { changes.split_off(room) } else { Vec::new() };
            self.changes += changes.len();
            self.part.dirs.push((dir.clone(), changes));
            changes = rest;
            if self.changes >= self.max_changes || self.part.dirs.len() >= BATCH_DIRS {
                self.send();
            }
        }
    }

    fn send(&mut self) {
        if self.part.dirs.is_empty() {
            return;
        }
        let next = Part { seq: self.part.seq + 1, dirs: Vec::new() };
        let part = std::mem::replace(&mut self.part, next);
        self.changes = 0;
        if let Some(tx) = &self.tx {
            // Fails only when every worker is gone (a panic, which the thread scope carries on).
            let _ = tx.send(part);
        }
    }

    /// Hands over the last part; the workers end when they have made it.
    pub(super) fn finish(&mut self) {
        self.send();
        self.tx = None;
    }

    /// After an error: the part being gathered is dropped unmade (those handed over are made),
    /// and the workers end.
    pub(super) fn abandon(&mut self) {
        self.part.dirs.clear();
        self.tx = None;
    }
}

/// What the workers share.
pub(super) struct Shared {
    journal: Mutex<journal::Writer>,
    allow_setid: bool,
    out: Mutex<Outcomes>,
}

impl Shared {
    pub(super) fn new(journal: journal::Writer, allow_setid: bool) -> Self {
        Shared { journal: Mutex::new(journal), allow_setid, out: Mutex::new(Outcomes::default()) }
    }

    /// What the changes came to, messages in walk order.
    pub(super) fn outcomes(self) -> Outcomes {
        let mut out = self.out.into_inner().unwrap_or_else(|p| p.into_inner());
        out.trim();
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the changes came to.
#[derive(Debug, Default)]
pub(super) struct Outcomes {
    pub(super) changed: u64,
    /// Already as in the baseline when checked (a run resumed).
    pub(super) already: u64,
    /// Gone, replaced or changed since the walk.
    pub(super) skipped: u64,
    pub(super) failed: u64,
    /// Files with capabilities left alone without `--allow-setid`.
    pub(super) withheld: u64,
    /// The first failures and skips (part, message), path and why.
    pub(super) failures: Vec<(u64, String)>,
    /// The first withheld files (part, message).
    pub(super) notes: Vec<(u64, String)>,
}

impl Outcomes {
    fn fail(&mut self, seq: u64, what: String) {
        if self.failures.len() < LISTED {
            self.failures.push((seq, what));
        }
    }

    fn absorb(&mut self, o: Outcomes) {
        self.changed += o.changed;
        self.already += o.already;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.withheld += o.withheld;
        self.failures.extend(o.failures);
        self.notes.extend(o.notes);
        if self.failures.len() > 4 * LISTED || self.notes.len() > 4 * LISTED {
            self.trim();
        }
    }

    /// Keeps the first messages in walk order (parts finish in any order).
    fn trim(&mut self) {
        for v in [&mut self.failures, &mut self.notes] {
            v.sort_by_key(|(seq, _)| *seq);
            v.truncate(LISTED);
        }
    }
}

/// A worker: makes parts until the pool is finished.
pub(super) fn work(rx: Arc<Mutex<Receiver<Part>>>, shared: &Shared) {
    // Its own handle on the journal, to wait for the disk without holding the lock (without
    // one, it syncs under the lock).
    let syncer = lock(&shared.journal).syncer().ok();
    loop {
        let next = lock(&rx).recv();
        let Ok(part) = next else { return };
        let out = make(&part, shared, syncer.as_ref());
        lock(&shared.out).absorb(out);
    }
}

/// Checks the part's changes, journals the records of those still to make (synced), then
/// makes them; each descriptor is closed after its change.
fn make(part: &Part, sh: &Shared, syncer: Option<&std::fs::File>) -> Outcomes {
    let mut out = Outcomes::default();
    let mut lines = Vec::new();
    let mut ready: Vec<(Ready, &Planned)> = Vec::new();
    for (dir, changes) in &part.dirs {
        for p in changes {
            let checked = match dir.fd() {
                Some(dfd) => check_one(dfd, p, sh.allow_setid, &mut lines),
                None => Checked::Failed("its directory is not open".into()),
            };
            match checked {
                Checked::Ready(r) => ready.push((r, p)),
                Checked::Already => out.already += 1,
                Checked::Withheld(msg) => {
                    out.withheld += 1;
                    if out.notes.len() < LISTED {
                        out.notes.push((part.seq, format!("{}: {msg}", p.path)));
                    }
                }
                Checked::Skipped(why) => {
                    out.skipped += 1;
                    out.fail(part.seq, format!("{}: left alone: {why}", p.path));
                }
                Checked::Failed(why) => {
                    out.failed += 1;
                    out.fail(part.seq, format!("{}: {why}", p.path));
                }
            }
        }
    }
    if ready.is_empty() {
        return out;
    }
    // Appended under the lock (whole lines), synced outside it through this worker's own
    // handle, which also reports a failed writeback that another worker's sync saw first.
    let synced = match syncer {
        Some(f) => {
            let appended = lock(&sh.journal).append(&lines);
            appended.and_then(|()| f.sync_data())
        }
        None => lock(&sh.journal).append_synced(&lines),
    };
    if let Err(e) = synced {
        // Without its record on disk, no change may be made (the descriptors close here).
        out.failed += ready.len() as u64;
        out.fail(part.seq, format!("journal write failed, nothing changed in this batch: {e}"));
        return out;
    }
    for (r, p) in ready {
        match apply_one(&r, p, sh.allow_setid) {
            Ok(()) => out.changed += 1,
            Err(why) => {
                out.failed += 1;
                out.fail(part.seq, format!("{}: {why}", p.path));
            }
        }
    }
    out
}

/// A planned change checked on its inode: journaled next, then made through `fd`.
struct Ready {
    /// The entry itself (`O_PATH`), checked to be the inode the walk saw.
    fd: OwnedFd,
    owner_change: bool,
    /// Permission bits to set after the owner (`chown` cleared set-id bits, or they differ).
    chmod: Option<u32>,
    /// File capabilities to put back after the owner (`--allow-setid`).
    caps: Option<Vec<u8>>,
}

/// What checking one planned change on its inode found.
enum Checked {
    Ready(Ready),
    /// Already as in the baseline (a run resumed).
    Already,
    /// Gone, replaced, or changed since the walk: why.
    Skipped(String),
    /// Has file capabilities and `--allow-setid` was not given: why.
    Withheld(String),
    Failed(String),
}

/// Opens the entry (`O_PATH | O_NOFOLLOW`) and checks that it is the inode the walk saw
/// (device, inode, birth time) with the owner and mode the walk saw; reads its file
/// capabilities through that descriptor when `chown` would clear them; appends its journal
/// record to `lines`. The change is later made through the same descriptor, so it reaches
/// this inode whatever is renamed into the name meanwhile; an owner or mode that someone
/// else sets between this check and the change (the batch's journal sync) is overwritten,
/// and the record keeps the one seen here.
fn check_one(dir: BorrowedFd<'_>, p: &Planned, allow_setid: bool, lines: &mut Vec<u8>) -> Checked {
    let mask = StatxFlags::TYPE | StatxFlags::MODE | StatxFlags::UID | StatxFlags::GID | StatxFlags::BTIME;
    let (fd, now) = match entry::open_stat(dir, &p.name, p.listed.id, mask) {
        Ok(x) => x,
        Err(Errno::NOENT) => return Checked::Skipped("gone".into()),
        Err(Errno::STALE) => return Checked::Skipped("another file has this name now".into()),
        Err(e) => return Checked::Failed(format!("cannot open: {}", std::io::Error::from(e))),
    };
    let btime = (now.stx_mask & StatxFlags::BTIME.bits() != 0).then_some((now.stx_btime.tv_sec, now.stx_btime.tv_nsec));
    if btime != p.listed.btime {
        return Checked::Skipped("another file has this name now (another birth time)".into());
    }
    let mode = u32::from(now.stx_mode);
    let cur = (now.stx_uid, now.stx_gid);
    let cur_perm = perm_of(mode);
    if cur == (p.uid, p.gid) && p.perm.is_none_or(|t| t == cur_perm) {
        return Checked::Already;
    }
    if cur != (p.listed.uid, p.listed.gid) || cur_perm != perm_of(p.listed.mode) {
        return Checked::Skipped(format!(
            "owner and mode changed since the walk ({}:{} {:04o}, were {}:{} {:04o})",
            cur.0,
            cur.1,
            cur_perm,
            p.listed.uid,
            p.listed.gid,
            perm_of(p.listed.mode)
        ));
    }
    let owner_change = cur != (p.uid, p.gid);
    let mut caps = None;
    if owner_change && mode & 0o170000 == 0o100000 {
        // chown clears file capabilities: read them first, for the journal and to put back.
        caps = match entry::caps(&fd) {
            Ok(c) => c,
            Err(e) => {
                return Checked::Failed(format!("cannot read its file capabilities: {}", std::io::Error::from(e)));
            }
        };
        if caps.is_some() && !allow_setid {
            return Checked::Withheld(
                "has file capabilities that chown would clear: left alone without --allow-setid".into(),
            );
        }
    }
    let chmod = p.perm.filter(|&perm| perm != cur_perm || (owner_change && perm & 0o6000 != 0));
    let rec = Record {
        path: p.path.clone(),
        dev: p.listed.id.dev,
        ino: p.listed.id.ino,
        btime: btime.map(|(s, n)| format!("{s}.{n:09}")),
        mode,
        caps: caps.as_ref().map(|c| c.iter().map(|b| format!("{b:02x}")).collect()),
        uid: cur.0,
        gid: cur.1,
        new_uid: p.uid,
        new_gid: p.gid,
        new_mode: Some(p.perm.unwrap_or(0o777)),
    };
    // Plain data into a Vec: serialisation cannot fail.
    let _ = serde_json::to_writer(&mut *lines, &rec);
    lines.push(b'\n');
    Checked::Ready(Ready { fd, owner_change, chmod, caps })
}

/// Makes one checked change through its descriptor.
fn apply_one(r: &Ready, p: &Planned, allow_setid: bool) -> Result<(), String> {
    if r.owner_change {
        entry::chown(&r.fd, p.uid, p.gid).map_err(|e| format!("chown failed: {}", std::io::Error::from(e)))?;
    }
    if let Some(perm) = r.chmod {
        entry::chmod(&r.fd, perm)
            .map_err(|e| format!("owner restored, but not the mode: {}", std::io::Error::from(e)))?;
    }
    if let Some(caps) = &r.caps
        && allow_setid
    {
        entry::set_caps(&r.fd, caps).map_err(|e| format!("owner restored, but not its file capabilities: {e}"))?;
    }
    Ok(())
}
