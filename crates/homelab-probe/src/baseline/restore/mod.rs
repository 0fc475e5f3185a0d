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
//!   restored; one changed again between the walk and its check is left alone;
//! - each entry to change is opened from its directory with `O_PATH | O_NOFOLLOW` and checked
//!   to be the walked inode (device, inode, birth time) with the walked owner and mode; its
//!   file capabilities are read through that descriptor; then the records of a batch (of
//!   directories) are journaled and synced, and only then are the changes made, on the inode
//!   itself through the same descriptor (`fchownat(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)`,
//!   then the mode); worker threads do this, batch by batch, while the walk goes on
//!   (`apply.rs`);
//! - set-user-ID and set-group-ID bits of regular files are put back only with
//!   [`RestoreOptions::allow_setid`] (a file owned by someone else for a while may have new
//!   content: check it first), and so are the file capabilities `chown` would clear; without
//!   it the owner is restored, the bits are not, and each case is listed;
//! - a hard-linked inode is changed once, at its first name; inodes with names outside the
//!   roots are listed after the run (the other names share the change: an inode has one owner);
//! - an interrupted apply leaves a journal covering every change made: undo it, or run the
//!   restore again, which does what is left.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustix::fs::{AtFlags, StatxFlags};
use serde::{Deserialize, Serialize};

use super::compare::{CheckOptions, Found, Matcher, Sink, Tally, run, walk_plan};
use super::{BaselineError, BaselineReport, invalid, read_whole, validate};
use crate::drift::guard::{Refused, SystemDirs};
use crate::drift::journal::{self, Header as JournalHeader};
use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::baseline::{EntryStat, Parser};
use crate::model::fs::FileKind;
use crate::scan::FileId;
use crate::scan::escape::{escape_into, escape_path};
use crate::scan::ordered::{Dir, Listed};

mod apply;

use apply::Planned;

/// Problems and withheld changes listed in a report, at most.
const LISTED: usize = 50;
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

struct Restorer {
    tally: Tally,
    plan: RestorePlan,
    applied: Option<Applied>,
    allow_setid: bool,
    roots: Vec<PathBuf>,
    /// Changes of the directory being merged.
    current: Vec<Planned>,
    /// The escaped path of the directory being merged, with a final `/` ([`Restorer::path_of`]).
    prefix: Option<String>,
    /// Where the changes go to be made (`--apply`).
    pool: Option<apply::Pool>,
    /// Hard-linked inodes planned: links, names seen under the roots, the first path.
    linked: std::collections::HashMap<FileId, (u32, u32, String)>,
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

    /// The escaped path of entry `name` (`.`: the directory itself) of the directory being
    /// merged, `dir` of root `root`: its escaped path is kept until the directory is done, so
    /// each entry escapes only its name (escaping keeps `/` as it is, so the two compose).
    fn path_of(&mut self, root: usize, dir: &[Vec<u8>], name: &[u8]) -> String {
        let root = self.roots.get(root).map(PathBuf::as_path).unwrap_or(Path::new(""));
        if name == b"." {
            return super::entry_path(root, dir, name);
        }
        let prefix = self.prefix.get_or_insert_with(|| {
            let mut p = super::entry_path(root, dir, b".");
            if !p.ends_with('/') {
                p.push('/');
            }
            p
        });
        let mut path = String::with_capacity(prefix.len() + name.len());
        path.push_str(prefix);
        escape_into(name, &mut path);
        path
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
        let path = self.path_of(root, dir, name.to_bytes());
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
                    let path = self.path_of(root, dir, name.to_bytes());
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
        self.prefix = None;
        if self.current.is_empty() {
            return;
        }
        let changes = std::mem::take(&mut self.current);
        if let Some(pool) = &mut self.pool {
            pool.add(dir, changes);
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
    let reader = super::file::Reader::new(&bytes[..])
        .map_err(|e| BaselineError::File { path: file.clone(), message: e.to_string() })?;
    let parser = Parser::new(reader).map_err(|e| invalid(file, e))?;
    let matcher = Matcher::new(opts.check.by_name, IdentityDb::load(host));
    let guard = |path: &Path, id: FileId| match system.identify(id) {
        Some(what) => Err(Refused { path: path.to_path_buf(), what: what.to_owned() }.to_string()),
        None => Ok(()),
    };
    let shared = writer.map(|w| apply::Shared::new(w, opts.allow_setid));
    let threads = match opts.check.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (stats, mut r) = std::thread::scope(|s| {
        let pool = shared.as_ref().map(|shared| {
            // Before the walk starts: it sizes its own descriptor budget from the limit too.
            let max_changes = apply::part_changes(threads);
            let (tx, rx) = std::sync::mpsc::sync_channel(threads);
            // Only the workers hold the receiver: if they all ended, sending fails at once.
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..threads {
                let rx = rx.clone();
                s.spawn(move || apply::work(rx, shared));
            }
            apply::Pool::new(tx, max_changes)
        });
        let mut r = Restorer {
            tally: Tally::new(live_roots.clone(), opts.check.samples),
            plan: RestorePlan::default(),
            applied: journal_path.as_ref().map(|p| Applied { journal: escape_path(p), ..Applied::default() }),
            allow_setid: opts.allow_setid,
            roots: live_roots.clone(),
            current: Vec::new(),
            prefix: None,
            pool,
            linked: Default::default(),
        };
        let stats = run(file, parser, &live_roots, &walk, Some(&guard), matcher, &mut r);
        // Also after an error (without its last part): the workers end once they are done.
        if let Some(pool) = &mut r.pool {
            match stats {
                Ok(_) => pool.finish(),
                Err(_) => pool.abandon(),
            }
        }
        (stats, r)
    });
    let stats = stats?;
    let mut applied = r.applied.take();
    if let (Some(a), Some(shared)) = (&mut applied, shared) {
        let out = shared.outcomes();
        a.changed = out.changed;
        a.already = out.already;
        a.skipped = out.skipped;
        a.failed = out.failed;
        a.failures = out.failures.into_iter().map(|(_, m)| m).collect();
        r.plan.setid_withheld += out.withheld;
        for (_, n) in out.notes {
            r.note(n);
        }
        for (links, seen, path) in r.linked.values() {
            if seen < links && a.links_outside.len() < LISTED {
                a.links_outside.push(format!(
                    "{path}: {links} hard links, {seen} of them under the roots: the others share the change"
                ));
            }
        }
        a.links_outside.sort();
    }
    let check = r.tally.report(&opts.check, &header, &live_roots, stats, start);
    Ok(RestoreReport { check, plan: r.plan, applied })
}
