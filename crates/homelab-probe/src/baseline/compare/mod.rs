//! Comparing a baseline with the live tree: the merge of the two ordered streams (`Merge`,
//! shared with the restore) and the report of `baseline check` ([`check`]).
//!
//! The live walk (`scan::ordered`) and the baseline's records come in the same order, so the
//! merge holds one directory of each: for a directory on both sides the two sorted listings
//! are merged by name; a directory only in the baseline has all its entries missing; one only
//! on the live side has all its entries new. A directory the baseline could not read leaves
//! the live entries under it `unknown`; one that cannot be read now leaves the baseline's
//! entries under it `unchecked`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{BaselineError, invalid, mapped_roots, open};
use crate::drift::prepare_roots;
use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::baseline::{EntryStat, Parser, kind_of_mode};
use crate::model::fs::FileKind;
use crate::scan::ordered::{self, Dir, Guard, Listed, WalkOptions, WalkStats};
use crate::scan::{Exclude, StopReason};

mod merge;
mod report;

use merge::Merge;
pub(crate) use report::Tally;
pub use report::{BaselineReport, Change, ChangeGroup, CheckOptions, RootPair};

/// What differs about an entry present on both sides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Another file type (a directory that is now a symbolic link).
    pub kind: bool,
    /// Another uid or gid.
    pub owner: bool,
    /// Other permission bits.
    pub mode: bool,
}

impl Changes {
    pub(crate) fn any(&self) -> bool {
        self.kind || self.owner || self.mode
    }
}

/// One entry the merge met.
pub(crate) enum Found<'x> {
    /// On both sides.
    Both { base: EntryStat, live: &'x Listed, name: &'x CStr, changes: Changes },
    /// Only in the baseline.
    Missing { name: &'x [u8] },
    /// Only on the live side.
    New { name: &'x CStr },
}

/// Where the merge's results go: the check's tally or the restore.
pub(crate) trait Sink {
    /// `n` entries are the same on both sides.
    fn same(&mut self, n: u64);
    /// An entry that differs, is missing or is new, in directory `dir` (components) of root
    /// `root`; `live_dir` is the live directory when it was read.
    fn found(&mut self, m: &Matcher, root: usize, dir: &[Vec<u8>], live_dir: Option<&Dir>, f: Found<'_>);
    /// `n` baseline entries under a directory that cannot be read now.
    fn unchecked(&mut self, n: u64);
    /// `n` live entries under a directory the baseline could not read.
    fn unknown(&mut self, n: u64);
    /// A live directory that could not be read, or entries of it that could not be examined.
    fn problems(&mut self, dir: &Dir);
    /// The merge is done with `dir` (a restore keeps its descriptor for a while).
    fn dir_done(&mut self, _dir: Dir) {}
}

/// How ids are compared: by number, or by name where both sides have one (`--by-name`).
/// Look-ups on this host are cached (NSS's files backend reads `/etc/passwd` at every call).
pub struct Matcher {
    by_name: bool,
    ids: IdentityDb,
    users: RefCell<HashMap<u32, Option<String>>>,
    groups: RefCell<HashMap<u32, Option<String>>>,
    uids_by_name: RefCell<HashMap<String, Option<u32>>>,
    gids_by_name: RefCell<HashMap<String, Option<u32>>>,
    base_users: HashMap<u32, String>,
    base_groups: HashMap<u32, String>,
}

impl Matcher {
    pub(crate) fn new(by_name: bool, ids: IdentityDb) -> Self {
        Matcher {
            by_name,
            ids,
            users: RefCell::default(),
            groups: RefCell::default(),
            uids_by_name: RefCell::default(),
            gids_by_name: RefCell::default(),
            base_users: HashMap::new(),
            base_groups: HashMap::new(),
        }
    }

    /// The live host's name of `uid`.
    pub(crate) fn live_user(&self, uid: u32) -> Option<String> {
        let ids = &self.ids;
        self.users.borrow_mut().entry(uid).or_insert_with(|| ids.user_by_uid(uid).map(|u| u.name)).clone()
    }

    /// The live host's name of `gid`.
    pub(crate) fn live_group(&self, gid: u32) -> Option<String> {
        let ids = &self.ids;
        self.groups.borrow_mut().entry(gid).or_insert_with(|| ids.group_by_gid(gid).map(|g| g.name)).clone()
    }

    /// The recording host's name of `uid`.
    pub(crate) fn base_user(&self, uid: u32) -> Option<&str> {
        self.base_users.get(&uid).map(String::as_str)
    }

    /// The recording host's name of `gid`.
    pub(crate) fn base_group(&self, gid: u32) -> Option<&str> {
        self.base_groups.get(&gid).map(String::as_str)
    }

    /// The live uid that matches the baseline's `uid`: the same number, or with `--by-name`
    /// the live user of the same name (`None`: that name has no user here).
    pub(crate) fn target_uid(&self, uid: u32) -> Option<u32> {
        match self.base_users.get(&uid).filter(|_| self.by_name) {
            Some(name) => {
                let ids = &self.ids;
                *self
                    .uids_by_name
                    .borrow_mut()
                    .entry(name.clone())
                    .or_insert_with(|| ids.user_by_name(name).map(|u| u.uid))
            }
            None => Some(uid),
        }
    }

    /// As [`Matcher::target_uid`] for groups.
    pub(crate) fn target_gid(&self, gid: u32) -> Option<u32> {
        match self.base_groups.get(&gid).filter(|_| self.by_name) {
            Some(name) => {
                let ids = &self.ids;
                *self
                    .gids_by_name
                    .borrow_mut()
                    .entry(name.clone())
                    .or_insert_with(|| ids.group_by_name(name).map(|g| g.gid))
            }
            None => Some(gid),
        }
    }

    fn same_uid(&self, base: u32, live: u32) -> bool {
        if !self.by_name {
            return base == live;
        }
        match (self.base_users.get(&base), self.live_user(live)) {
            (Some(b), Some(l)) => *b == l,
            _ => base == live,
        }
    }

    fn same_gid(&self, base: u32, live: u32) -> bool {
        if !self.by_name {
            return base == live;
        }
        match (self.base_groups.get(&base), self.live_group(live)) {
            (Some(b), Some(l)) => *b == l,
            _ => base == live,
        }
    }

    fn changes(&self, base: EntryStat, mode: u32, uid: u32, gid: u32) -> Changes {
        let kind = kind_of_mode(mode);
        if kind != Some(base.kind) {
            return Changes { kind: true, ..Changes::default() };
        }
        let owner = !self.same_uid(base.uid, uid) || !self.same_gid(base.gid, gid);
        let mode = base.kind != FileKind::Symlink && base.mode != mode & 0o7777;
        Changes { kind: false, owner, mode }
    }
}

/// The live roots a baseline maps to, validated (`for_restore`: as drift's fix validates),
/// and the walk that repeats the one that took it (its excludes, its mount boundary).
pub(crate) fn walk_plan(
    header: &crate::model::baseline::Header,
    opts: &CheckOptions,
    for_restore: bool,
) -> Result<(Vec<PathBuf>, WalkOptions), BaselineError> {
    let live_roots = mapped_roots(header, &opts.baseline, &opts.map)?;
    let prepared = prepare_roots(&live_roots, for_restore, &crate::drift::guard::SystemDirs::load())?;
    if prepared.len() != live_roots.len() {
        return Err(BaselineError::Invalid {
            path: opts.baseline.clone(),
            message: "the header lists a root twice or a root inside another".into(),
        });
    }
    let exclude = Exclude::new(&header.exclude).map_err(|e| BaselineError::Invalid {
        path: opts.baseline.clone(),
        message: format!("header: bad exclude pattern: {e}"),
    })?;
    let start = Instant::now();
    let walk = WalkOptions {
        cross_mounts: header.cross_mounts,
        exclude,
        threads: opts.threads,
        max_entries: opts.max_entries,
        deadline: opts.max_duration.map(|d| start + d),
        progress: opts.progress.clone(),
        keep_fds: for_restore,
        ..WalkOptions::default()
    };
    Ok((prepared, walk))
}

/// Walks and merges: the shared body of check and restore.
pub(crate) fn run<R: Read, S: Sink>(
    file: &Path,
    parser: Parser<R>,
    live_roots: &[PathBuf],
    walk: &WalkOptions,
    guard: Option<Guard<'_>>,
    matcher: Matcher,
    sink: &mut S,
) -> Result<WalkStats, BaselineError> {
    let mut merge = Merge::new(parser, matcher, sink);
    let stats = ordered::walk(live_roots, walk, guard, |ev| merge.consume(ev)).map_err(|e| {
        crate::drift::DriftError::Root { path: e.path.clone(), message: format!("cannot use as a root: {}", e.source) }
    })?;
    merge.finish(stats.stopped.is_none()).map_err(|e| invalid(file, e))?;
    Ok(stats)
}

/// Compares the baseline `opts.baseline` with the live tree under its roots.
pub fn check(opts: &CheckOptions) -> Result<BaselineReport, BaselineError> {
    check_at(&Host::live(), opts)
}

/// [`check`] with the identity database of `host` for `--by-name`.
pub(crate) fn check_at(host: &Host, opts: &CheckOptions) -> Result<BaselineReport, BaselineError> {
    let start = Instant::now();
    let parser = open(&opts.baseline)?;
    let header = parser.header().clone();
    let (live_roots, walk) = walk_plan(&header, opts, false)?;
    let mut tally = Tally::new(live_roots.clone(), opts.samples);
    let matcher = Matcher::new(opts.by_name, IdentityDb::load(host));
    let stats = run(&opts.baseline, parser, &live_roots, &walk, None, matcher, &mut tally)?;
    Ok(tally.report(opts, &header, &live_roots, stats, start))
}

/// Why a walk stopped, as `[[baseline]]` names the limit.
pub fn limit_name(why: StopReason) -> &'static str {
    match why {
        StopReason::MaxEntries => "max_entries",
        StopReason::Deadline => "max_seconds",
        // The ordered walk refuses no directory (it stays on the roots' mounts unless the
        // header says otherwise); named for completeness.
        StopReason::Refused => "refused",
    }
}
