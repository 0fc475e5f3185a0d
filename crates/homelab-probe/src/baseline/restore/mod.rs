//! Putting owners and modes back from a baseline: the plan (what [`restore`] would change),
//! and with [`RestoreOptions::apply`] the change itself, journaled as drift's fix is, so that
//! `drift undo` (or `baseline undo`) reverses it.
//!
//! The safety model (docs/baseline.md says it for users):
//! - the whole baseline file is read and checked before anything is changed; a file that is
//!   not whole changes nothing;
//! - roots are refused as drift's fix refuses them (`/`, through a symbolic link, with `..`),
//!   and every root and every directory entered is asked of the system-directory refusal
//!   (`drift::system`): device and inode of `/`, `/proc/1/root`, `/etc`, `/usr`, `/var`,
//!   `/boot`, `/nix/store`, `/home`, whatever path leads there;
//! - the walk never follows a symbolic link (every directory `openat(O_NOFOLLOW)` from its
//!   parent) and stays on each root's filesystem unless the baseline was taken across them;
//! - an entry whose type changed is left alone (a finding); one that is missing cannot be
//!   restored; one changed again between the walk and the change is left alone;
//! - each entry to change is opened from its directory with `O_PATH | O_NOFOLLOW` and checked
//!   to be the walked inode (device, inode, birth time) with the walked owner and mode; its
//!   file capabilities are read through that descriptor; then the records of a batch (of
//!   directories) are journaled and synced, and only then are the changes made, on the inode
//!   itself through the same descriptor (`fchownat(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`,
//!   then the mode);
//! - set-user-ID and set-group-ID bits of regular files are put back only with
//!   [`RestoreOptions::allow_setid`] (a file owned by someone else for a while may have new
//!   content: check it first), and so are the file capabilities `chown` would clear; without
//!   it the owner is restored, the bits are not, and each case is listed;
//! - a hard-linked inode is changed once, at its first name; inodes with names outside the
//!   roots are listed after the run (the other names share the change: an inode has one owner);
//! - an interrupted apply leaves a journal covering every change made: undo it, or run the
//!   restore again, which does what is left.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, StatxFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::compare::{CheckOptions, Found, Matcher, Sink, Tally, run, walk_plan};
use super::{BaselineError, BaselineReport, invalid, read_whole, validate};
use crate::drift::entry;
use crate::drift::guard::{Refused, SystemDirs};
use crate::drift::journal::{self, Header as JournalHeader, Record};
use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::baseline::{EntryStat, Parser};
use crate::model::fs::FileKind;
use crate::scan::FileId;
use crate::scan::escape::escape_path;
use crate::scan::ordered::{Dir, Listed};

/// Problems and withheld changes listed in a report, at most.
const LISTED: usize = 50;
/// Directories whose changes are journaled (and synced) together.
const BATCH_DIRS: usize = 64;
/// Changes journaled together, at most: each holds its entry's descriptor from its check to
/// its change, so fewer where the descriptor limit is lower ([`batch_changes`]).
const BATCH_CHANGES: usize = 8192;

/// How many changes a batch may hold open: a quarter of the soft `RLIMIT_NOFILE` (the walk
/// keeps up to half for directories), after raising the soft limit towards the hard one
/// (as many programs do; the default soft limit of 1024 exists for `select`, unused here).
fn batch_changes() -> usize {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = (4 * BATCH_CHANGES + 64) as u64;
    let lim = getrlimit(Resource::Nofile);
    let cur = lim.current.unwrap_or(u64::MAX);
    if cur < want {
        let raised = lim.maximum.map_or(want, |m| m.min(want));
        if raised > cur {
            // Best effort: on failure the batches are only smaller.
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(raised), maximum: lim.maximum });
        }
    }
    let cur = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let cur = usize::try_from(cur).unwrap_or(usize::MAX);
    (cur.saturating_sub(64) / 4).clamp(16, BATCH_CHANGES)
}

/// What to restore and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// The baseline, the roots' map, `--by-name` and the walk (as for a check).
    pub check: CheckOptions,
    /// Make the changes (without it: the plan only).
    pub apply: bool,
    /// The journal to create (must not exist); default `./homelab-baseline-restore-<time>.journal`.
    pub journal: Option<PathBuf>,
    /// Put set-user-ID/set-group-ID bits of regular files back, and keep the file
    /// capabilities `chown` clears.
    pub allow_setid: bool,
}

impl RestoreOptions {
    /// The plan of a restore from `baseline`.
    pub fn new(baseline: PathBuf) -> Self {
        RestoreOptions { check: CheckOptions::new(baseline), apply: false, journal: None, allow_setid: false }
    }
}

/// What a restore would do (the plan) or did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// Entries whose owner or group is to be put back.
    pub owners: u64,
    /// Entries whose permission bits are to be put back.
    pub modes: u64,
    /// Entries left alone because their type changed.
    pub type_changed: u64,
    /// Entries that are missing: nothing to put back.
    pub missing: u64,
    /// Entries whose baseline owner has no user or group of that name here (`--by-name`).
    pub no_such_id: u64,
    /// Regular files whose set-user-ID/set-group-ID bits (or file capabilities) are left off
    /// without `--allow-setid`.
    pub setid_withheld: u64,
    /// Further names of hard-linked inodes already handled at their first name.
    pub hard_links: u64,
    /// The first of the entries above that need a person: one sentence each.
    pub notes: Vec<String>,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The journal (escaped path).
    pub journal: String,
    /// Entries changed.
    pub changed: u64,
    /// Entries that already had the baseline's owner and mode when their turn came (another
    /// name of the same inode, or a run resumed).
    pub already: u64,
    /// Entries left alone: gone, replaced, or changed again since the walk.
    pub skipped: u64,
    /// Changes that failed.
    pub failed: u64,
    /// The first failures and skips: path and why.
    pub failures: Vec<String>,
    /// Changed inodes that have hard links outside the roots (their other names changed too).
    pub links_outside: Vec<String>,
}

/// The result of [`restore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RestoreReport {
    /// What differs (the check's report).
    pub check: BaselineReport,
    /// What the restore changes.
    pub plan: RestorePlan,
    /// Set after `--apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Applied>,
}

impl RestoreReport {
    /// The verdict: for a plan, nothing to restore and nothing left alone; after an apply,
    /// every planned change made, nothing withheld, skipped or failed, and the walk whole.
    pub fn ok(&self) -> bool {
        let p = &self.plan;
        let clean = p.type_changed == 0 && p.no_such_id == 0 && p.setid_withheld == 0 && self.check.errors == 0;
        match &self.applied {
            None => clean && p.owners == 0 && p.modes == 0 && self.check.complete(),
            Some(a) => clean && a.failed == 0 && a.skipped == 0 && self.check.complete(),
        }
    }
}

/// One change waiting for its batch's journal sync.
struct Planned {
    name: CString,
    path: String,
    listed: Listed,
    uid: u32,
    gid: u32,
    /// Permission bits to set (`None` for a symbolic link).
    perm: Option<u32>,
}

struct Restorer {
    tally: Tally,
    plan: RestorePlan,
    applied: Option<Applied>,
    allow_setid: bool,
    writer: Option<journal::Writer>,
    roots: Vec<PathBuf>,
    /// Changes of the directory being merged.
    current: Vec<Planned>,
    batch: Vec<(Dir, Vec<Planned>)>,
    batch_changes: usize,
    /// Changes a batch holds at most ([`batch_changes`]).
    max_changes: usize,
    /// Hard-linked inodes planned: links, names seen under the roots, the first path.
    linked: std::collections::HashMap<FileId, (u32, u32, String)>,
    samples: usize,
}

fn perm_of(mode: u32) -> u32 {
    mode & 0o7777
}

impl Restorer {
    fn note(&mut self, s: String) {
        if self.plan.notes.len() < LISTED {
            self.plan.notes.push(s);
        }
    }

    fn fail(&mut self, what: String) {
        if let Some(a) = &mut self.applied
            && a.failures.len() < LISTED
        {
            a.failures.push(what);
        }
    }

    fn plan_entry(
        &mut self,
        m: &Matcher,
        root: usize,
        dir: &[Vec<u8>],
        name: &std::ffi::CStr,
        base: EntryStat,
        live: &Listed,
    ) {
        let root_path = self.roots.get(root).cloned().unwrap_or_default();
        let path = super::entry_path(&root_path, dir, name.to_bytes());
        let (Some(uid), Some(gid)) = (m.target_uid(base.uid), m.target_gid(base.gid)) else {
            self.plan.no_such_id += 1;
            let who = format!("{}:{}", m.base_user(base.uid).unwrap_or("?"), m.base_group(base.gid).unwrap_or("?"));
            self.note(format!("{path}: the baseline's owner {who} has no user or group of that name here: left alone"));
            return;
        };
        let symlink = base.kind == FileKind::Symlink;
        let mut perm = (!symlink).then_some(base.mode);
        if base.kind == FileKind::File && base.mode & 0o6000 != 0 && !self.allow_setid {
            perm = Some(base.mode & !0o6000);
            self.plan.setid_withheld += 1;
            self.note(format!(
                "{path}: set-user/group-ID bits ({:04o}) not put back without --allow-setid: check the file's content first",
                base.mode
            ));
        }
        let owner_change = (live.uid, live.gid) != (uid, gid);
        let mode_change = perm.is_some_and(|p| p != perm_of(live.mode));
        if !owner_change && !mode_change {
            return;
        }
        if live.nlink > 1 && base.kind != FileKind::Dir {
            if let Some(e) = self.linked.get_mut(&live.id) {
                e.1 += 1;
                self.plan.hard_links += 1;
                return;
            }
            self.linked.insert(live.id, (live.nlink, 1, path.clone()));
        }
        self.plan.owners += u64::from(owner_change);
        self.plan.modes += u64::from(mode_change);
        if self.applied.is_some() {
            self.current.push(Planned { name: name.to_owned(), path, listed: *live, uid, gid, perm });
        }
    }

    /// Checks each change of the batch on its inode, journals those still to make (synced),
    /// then makes them through the descriptors the checks opened; in parts of at most
    /// `max_changes`, the descriptors one part holds.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_changes = 0;
        let all: Vec<(usize, usize)> =
            batch.iter().enumerate().flat_map(|(d, (_, changes))| (0..changes.len()).map(move |c| (d, c))).collect();
        for part in all.chunks(self.max_changes.max(1)) {
            self.flush_part(&batch, part);
        }
    }

    fn flush_part(&mut self, batch: &[(Dir, Vec<Planned>)], part: &[(usize, usize)]) {
        let mut lines = Vec::new();
        let mut ready: Vec<(Ready, &Planned)> = Vec::new();
        for &(d, c) in part {
            let (dir, changes) = &batch[d];
            let p = &changes[c];
            let checked = match dir.fd() {
                Some(dfd) => check_one(dfd, p, self.allow_setid, &mut lines),
                None => Checked::Failed("its directory is not open".into()),
            };
            match checked {
                Checked::Ready(r) => ready.push((r, p)),
                Checked::Already => {
                    if let Some(a) = &mut self.applied {
                        a.already += 1;
                    }
                }
                Checked::Withheld(msg) => {
                    self.plan.setid_withheld += 1;
                    self.note(format!("{}: {msg}", p.path));
                }
                Checked::Skipped(why) => {
                    if let Some(a) = &mut self.applied {
                        a.skipped += 1;
                    }
                    self.fail(format!("{}: left alone: {why}", p.path));
                }
                Checked::Failed(why) => {
                    if let Some(a) = &mut self.applied {
                        a.failed += 1;
                    }
                    self.fail(format!("{}: {why}", p.path));
                }
            }
        }
        if ready.is_empty() {
            return;
        }
        let synced = match &mut self.writer {
            Some(w) => w.append_synced(&lines),
            None => Ok(()),
        };
        if let Err(e) = synced {
            // Without its record on disk, no change may be made (the descriptors close here).
            if let Some(a) = &mut self.applied {
                a.failed += ready.len() as u64;
            }
            self.fail(format!("journal write failed, nothing changed in this batch: {e}"));
            return;
        }
        for (r, p) in ready {
            match apply_one(&r, p, self.allow_setid) {
                Ok(()) => {
                    if let Some(a) = &mut self.applied {
                        a.changed += 1;
                    }
                }
                Err(why) => {
                    if let Some(a) = &mut self.applied {
                        a.failed += 1;
                    }
                    self.fail(format!("{}: {why}", p.path));
                }
            }
        }
    }
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

impl Sink for Restorer {
    fn same(&mut self, n: u64) {
        self.tally.same(n);
    }

    fn found(&mut self, m: &Matcher, root: usize, dir: &[Vec<u8>], live_dir: Option<&Dir>, f: Found<'_>) {
        match &f {
            Found::Both { base, live, name, changes } if live_dir.is_some() => {
                if changes.kind {
                    self.plan.type_changed += 1;
                    let root_path = self.roots.get(root).cloned().unwrap_or_default();
                    let path = super::entry_path(&root_path, dir, name.to_bytes());
                    self.note(format!("{path}: its type changed since the baseline: left alone"));
                } else {
                    self.plan_entry(m, root, dir, name, *base, live);
                }
            }
            Found::Missing { .. } => self.plan.missing += 1,
            _ => {}
        }
        self.tally.found(m, root, dir, live_dir, f);
    }

    fn unchecked(&mut self, n: u64) {
        self.tally.unchecked(n);
    }

    fn unknown(&mut self, n: u64) {
        self.tally.unknown(n);
    }

    fn problems(&mut self, dir: &Dir) {
        self.tally.problems(dir);
    }

    fn dir_done(&mut self, dir: Dir) {
        if self.current.is_empty() {
            return;
        }
        self.batch_changes += self.current.len();
        let changes = std::mem::take(&mut self.current);
        self.batch.push((dir, changes));
        if self.batch.len() >= BATCH_DIRS || self.batch_changes >= self.max_changes {
            self.flush();
        }
    }
}

/// Plans, and with `opts.apply` makes, the restore of owners and modes from the baseline.
pub fn restore(opts: &RestoreOptions) -> Result<RestoreReport, BaselineError> {
    restore_at(&Host::live(), opts)
}

fn default_journal() -> PathBuf {
    let now = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
    PathBuf::from(format!("homelab-baseline-restore-{now}.journal"))
}

pub(crate) fn restore_at(host: &Host, opts: &RestoreOptions) -> Result<RestoreReport, BaselineError> {
    let start = Instant::now();
    let file = &opts.check.baseline;
    // The whole file, checked, before anything else: nothing is changed from a partial file.
    let bytes = read_whole(file)?;
    let (header, _) = validate(file, &bytes)?;
    let (live_roots, mut walk) = walk_plan(&header, &opts.check, true)?;
    let system = SystemDirs::load();
    let mut root_devs = Vec::new();
    for r in &live_roots {
        let stx = rustix::fs::statx(rustix::fs::CWD, r.as_path(), AtFlags::SYMLINK_NOFOLLOW, StatxFlags::INO)
            .map_err(|e| crate::drift::DriftError::Root { path: r.clone(), message: e.to_string() })?;
        let id = FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino };
        system.check(r).map_err(|e| crate::drift::DriftError::Root { path: r.clone(), message: e.to_string() })?;
        if let Some(what) = system.identify(id) {
            let message = Refused { path: r.clone(), what: what.to_owned() }.to_string();
            return Err(crate::drift::DriftError::Root { path: r.clone(), message }.into());
        }
        root_devs.push(id.dev);
    }
    let (writer, journal_path) = if opts.apply {
        let path = opts.journal.clone().unwrap_or_else(default_journal);
        let h = JournalHeader {
            journal: journal::RESTORE_KIND.into(),
            version: journal::JOURNAL_VERSION,
            created: crate::model::report::now_rfc3339(),
            roots: live_roots.iter().map(|r| escape_path(r)).collect(),
            root_devs,
            uid: None,
            gid: None,
            baseline: Some(escape_path(file)),
        };
        let w = journal::Writer::create(&path, &h)?;
        walk.skip = Some(w.id());
        (Some(w), Some(path))
    } else {
        (None, None)
    };
    let mut r = Restorer {
        tally: Tally::new(live_roots.clone(), opts.check.samples),
        plan: RestorePlan::default(),
        applied: journal_path.as_ref().map(|p| Applied { journal: escape_path(p), ..Applied::default() }),
        allow_setid: opts.allow_setid,
        writer,
        roots: live_roots.clone(),
        current: Vec::new(),
        batch: Vec::new(),
        batch_changes: 0,
        max_changes: if opts.apply { batch_changes() } else { BATCH_CHANGES },
        linked: Default::default(),
        samples: opts.check.samples,
    };
    let reader = super::file::Reader::new(&bytes[..])
        .map_err(|e| BaselineError::File { path: file.clone(), message: e.to_string() })?;
    let parser = Parser::new(reader).map_err(|e| invalid(file, e))?;
    let matcher = Matcher::new(opts.check.by_name, IdentityDb::load(host));
    let guard = |path: &Path, id: FileId| match system.identify(id) {
        Some(what) => Err(Refused { path: path.to_path_buf(), what: what.to_owned() }.to_string()),
        None => Ok(()),
    };
    let stats = run(file, parser, &live_roots, &walk, Some(&guard), matcher, &mut r)?;
    r.flush();
    let mut applied = r.applied.take();
    if let Some(a) = &mut applied {
        for (links, seen, path) in r.linked.values() {
            if seen < links && a.links_outside.len() < LISTED {
                a.links_outside.push(format!(
                    "{path}: {links} hard links, {seen} of them under the roots: the others share the change"
                ));
            }
        }
        a.links_outside.sort();
    }
    let _ = r.samples;
    let check = r.tally.report(&opts.check, &header, &live_roots, stats, start);
    Ok(RestoreReport { check, plan: r.plan, applied })
}
