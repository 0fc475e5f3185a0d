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
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{BaselineError, ERROR_SAMPLES, entry_path, invalid, mapped_roots, open};
use crate::drift::{ErrorSample, prepare_roots};
use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::baseline::{EntryStat, FormatError, Parser, Record, kind_of_mode, walk_order};
use crate::model::fs::FileKind;
use crate::scan::escape::{escape, escape_path};
use crate::scan::ordered::{self, Dir, Event, Guard, Listed, RootStat, Unread, WalkOptions, WalkStats};
use crate::scan::{Exclude, Progress, StopReason};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Empty,
    Root(usize, EntryStat),
    Dir,
    Unreadable,
    EndRoot(usize),
    End,
}

/// The merge of a baseline stream with the live walk; the walk's consumer.
pub(crate) struct Merge<'s, R: Read, S: Sink> {
    parser: Parser<R>,
    pending: Pending,
    pub(crate) matcher: Matcher,
    sink: &'s mut S,
    root_base: Option<EntryStat>,
    root_live: Option<RootStat>,
    /// A live directory that cannot be read: baseline blocks under it are unchecked.
    unchecked_under: Option<(usize, Vec<Vec<u8>>)>,
    /// A directory the baseline could not read: live blocks under it are unknown.
    unknown_under: Option<(usize, Vec<Vec<u8>>)>,
    root: usize,
    error: Option<FormatError>,
    scratch: Vec<Vec<u8>>,
}

fn under(prefix: &Option<(usize, Vec<Vec<u8>>)>, root: usize, path: &[Vec<u8>]) -> bool {
    matches!(prefix, Some((r, p)) if *r == root && path.len() >= p.len() && path[..p.len()] == p[..])
}

impl<'s, R: Read, S: Sink> Merge<'s, R, S> {
    pub(crate) fn new(parser: Parser<R>, matcher: Matcher, sink: &'s mut S) -> Self {
        Merge {
            parser,
            pending: Pending::Empty,
            matcher,
            sink,
            root_base: None,
            root_live: None,
            unchecked_under: None,
            unknown_under: None,
            root: 0,
            error: None,
            scratch: Vec::new(),
        }
    }

    fn fill(&mut self) -> Result<Pending, FormatError> {
        if self.pending == Pending::Empty {
            self.pending = match self.parser.next_record()? {
                Some(Record::Root { index, stat }) => Pending::Root(index, stat),
                Some(Record::Dir { .. }) => Pending::Dir,
                Some(Record::Unreadable { .. }) => Pending::Unreadable,
                Some(Record::EndRoot { index }) => Pending::EndRoot(index),
                Some(Record::End(_)) | None => Pending::End,
            };
            self.sync_names();
        }
        Ok(self.pending)
    }

    /// Names the parser has read so far, for by-name comparisons.
    fn sync_names(&mut self) {
        if !self.matcher.by_name {
            return;
        }
        for (user, id, name) in self.parser.take_new_names() {
            if user {
                self.matcher.base_users.insert(id, name);
            } else {
                self.matcher.base_groups.insert(id, name);
            }
        }
    }

    /// The walk's consumer: stops the walk at the first format error (kept for `finish`).
    pub(crate) fn consume(&mut self, ev: Event<'_>) -> ControlFlow<()> {
        let r = match ev {
            Event::Root { index, stat, .. } => self.on_root(index, stat),
            Event::Dir(d) => self.on_dir(d),
            Event::RootEnd { index } => self.on_root_end(index),
        };
        match r {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }

    fn on_root(&mut self, index: usize, live: RootStat) -> Result<(), FormatError> {
        match self.fill()? {
            Pending::Root(i, stat) if i == index => {
                self.pending = Pending::Empty;
                self.root = index;
                self.root_base = Some(stat);
                self.root_live = Some(live);
                self.unchecked_under = None;
                self.unknown_under = None;
                Ok(())
            }
            _ => Err(FormatError::Invalid {
                offset: self.parser.offset(),
                message: format!("root {index} is not where the walk expects it"),
            }),
        }
    }

    fn on_dir(&mut self, dir: Dir) -> Result<(), FormatError> {
        let root = self.root;
        self.scratch.clear();
        self.scratch.extend(dir.components().into_iter().map(<[u8]>::to_vec));
        let comps = std::mem::take(&mut self.scratch);
        if comps.is_empty()
            && let (Some(base), Some(live)) = (self.root_base.take(), self.root_live.take())
        {
            let listed = Listed::new(live.mode, live.uid, live.gid, live.id, 1, live.btime);
            let changes = self.matcher.changes(base, live.mode, live.uid, live.gid);
            if changes.any() {
                self.sink.found(
                    &self.matcher,
                    root,
                    &[],
                    Some(&dir),
                    Found::Both { base, live: &listed, name: c".", changes },
                );
            } else {
                self.sink.same(1);
            }
        }
        if dir.unread.is_some() || !dir.problems.is_empty() {
            self.sink.problems(&dir);
        }
        loop {
            match self.fill()? {
                Pending::Dir | Pending::Unreadable => {
                    let unreadable = self.pending == Pending::Unreadable;
                    let ord = walk_order(self.parser.path(), &comps);
                    if ord == std::cmp::Ordering::Greater {
                        self.live_only(root, &comps, &dir);
                        break;
                    }
                    if ord == std::cmp::Ordering::Less {
                        self.base_only(root, unreadable);
                        self.pending = Pending::Empty;
                        continue;
                    }
                    // The same directory on both sides.
                    self.pending = Pending::Empty;
                    if dir.unread.is_some() {
                        if !unreadable {
                            self.sink.unchecked(self.parser.block().len() as u64);
                        }
                        self.unchecked_under = Some((root, comps.clone()));
                    } else if unreadable || under(&self.unknown_under, root, &comps) {
                        self.sink.unknown(dir.len() as u64);
                        self.unknown_under = Some((root, comps.clone()));
                    } else {
                        self.both(root, &comps, &dir);
                    }
                    break;
                }
                Pending::Root(..) | Pending::EndRoot(_) | Pending::End => {
                    self.live_only(root, &comps, &dir);
                    break;
                }
                Pending::Empty => unreachable_empty()?,
            }
        }
        if dir.unread.is_some() {
            self.unchecked_under = Some((root, comps.clone()));
        }
        self.scratch = comps;
        self.sink.dir_done(dir);
        Ok(())
    }

    fn on_root_end(&mut self, index: usize) -> Result<(), FormatError> {
        loop {
            match self.fill()? {
                Pending::Dir | Pending::Unreadable => {
                    let unreadable = self.pending == Pending::Unreadable;
                    self.base_only(self.root, unreadable);
                    self.pending = Pending::Empty;
                }
                Pending::EndRoot(i) if i == index => {
                    self.pending = Pending::Empty;
                    return Ok(());
                }
                _ => {
                    return Err(FormatError::Invalid {
                        offset: self.parser.offset(),
                        message: format!("the end of root {index} is not where the walk expects it"),
                    });
                }
            }
        }
    }

    /// A baseline directory with no live counterpart: its entries are missing (or unchecked,
    /// under a directory that cannot be read now).
    fn base_only(&mut self, root: usize, unreadable: bool) {
        if unreadable {
            return;
        }
        let n = self.parser.block().len() as u64;
        if under(&self.unchecked_under, root, self.parser.path()) {
            self.sink.unchecked(n);
            return;
        }
        let path = self.parser.path().to_vec();
        for (name, _) in self.parser.block().iter() {
            self.sink.found(&self.matcher, root, &path, None, Found::Missing { name });
        }
    }

    /// A live directory with no baseline counterpart: its entries are new (or unknown, under a
    /// directory the baseline could not read).
    fn live_only(&mut self, root: usize, comps: &[Vec<u8>], dir: &Dir) {
        if under(&self.unknown_under, root, comps) {
            self.sink.unknown(dir.len() as u64);
            return;
        }
        for (name, _) in dir.iter() {
            self.sink.found(&self.matcher, root, comps, Some(dir), Found::New { name });
        }
    }

    /// Both listings, merged by name.
    fn both(&mut self, root: usize, comps: &[Vec<u8>], dir: &Dir) {
        let block = self.parser.block();
        let (mut i, mut j) = (0, 0);
        let mut same = 0u64;
        while i < block.len() || j < dir.len() {
            let b = block.get(i);
            let l = dir.entry(j);
            let ord = match (&b, &l) {
                (Some((bn, _)), Some((ln, _))) => bn.cmp(&ln.to_bytes()),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match (ord, b, l) {
                (std::cmp::Ordering::Equal, Some((_, base)), Some((name, live))) => {
                    let changes = self.matcher.changes(base, live.mode, live.uid, live.gid);
                    if changes.any() {
                        self.sink.found(
                            &self.matcher,
                            root,
                            comps,
                            Some(dir),
                            Found::Both { base, live, name, changes },
                        );
                    } else {
                        same += 1;
                    }
                    i += 1;
                    j += 1;
                }
                (std::cmp::Ordering::Less, Some((name, _)), _) => {
                    self.sink.found(&self.matcher, root, comps, Some(dir), Found::Missing { name });
                    i += 1;
                }
                (_, _, Some((name, _))) => {
                    self.sink.found(&self.matcher, root, comps, Some(dir), Found::New { name });
                    j += 1;
                }
                _ => break,
            }
        }
        self.sink.same(same);
    }

    /// After a complete walk: reads the rest of the file, which must end where it should.
    /// Returns the sink's work and any format error met.
    pub(crate) fn finish(mut self, complete: bool) -> Result<(), FormatError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if complete && !matches!(self.fill()?, Pending::End) {
            return Err(FormatError::Invalid {
                offset: self.parser.offset(),
                message: "records after the last root".into(),
            });
        }
        Ok(())
    }
}

fn unreachable_empty() -> Result<(), FormatError> {
    Err(FormatError::Invalid { offset: 0, message: "internal: no record pending".into() })
}

/// What to compare.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckOptions {
    /// The baseline file.
    pub baseline: PathBuf,
    /// Roots that moved: a baseline root that is OLD or below it is compared at NEW.
    pub map: Vec<(PathBuf, PathBuf)>,
    /// Compare owners by user and group name where both hosts have one (ids renumbered on
    /// purpose); by number otherwise.
    pub by_name: bool,
    /// Sample paths kept per change.
    pub samples: usize,
    /// Worker threads (0: two per CPU).
    pub threads: usize,
    /// Stop after about this many entries (`[[baseline]]` bounds the check at boot).
    pub max_entries: Option<u64>,
    /// Stop after this long.
    pub max_duration: Option<Duration>,
    /// Live counters for a progress display.
    pub progress: Option<Arc<Progress>>,
}

impl CheckOptions {
    /// Options for `baseline` with the defaults: no map, ids by number, 5 samples, no limits.
    pub fn new(baseline: PathBuf) -> Self {
        CheckOptions {
            baseline,
            map: Vec::new(),
            by_name: false,
            samples: 5,
            threads: 0,
            max_entries: None,
            max_duration: None,
            progress: None,
        }
    }
}

/// What changed, from what to what, where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Another owner or group.
    Owner,
    /// Other permission bits.
    Mode,
    /// Another file type.
    Type,
    /// In the baseline, not on the host.
    Missing,
    /// On the host, not in the baseline.
    New,
}

/// Entries with the same change (the same from and to) under one top-level entry of a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeGroup {
    /// What changed.
    pub change: Change,
    /// The baseline's value: `999:999`, `0644`, `dir`; empty for missing and new entries.
    pub from: String,
    /// The live value.
    pub to: String,
    /// `from` as names (`postgres:postgres`), where the baseline names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_names: Option<String>,
    /// `to` as names on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_names: Option<String>,
    /// The live root (escaped).
    pub root: String,
    /// The deepest directory holding all of them, relative to the root (escaped; empty: the
    /// root).
    pub under: String,
    /// How many.
    pub count: u64,
    /// The first paths in walk order (escaped).
    pub samples: Vec<String>,
}

/// A baseline root and where it was compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootPair {
    /// The root as recorded (escaped).
    pub baseline: String,
    /// The root compared on this host (escaped; differs with `--map`).
    pub live: String,
}

/// The result of [`check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BaselineReport {
    /// The baseline file (escaped).
    pub baseline: String,
    /// The host the baseline was taken on.
    pub taken_on: Option<String>,
    /// When it was taken.
    pub taken_at: String,
    /// The roots.
    pub roots: Vec<RootPair>,
    /// Whether owners were compared by name.
    pub by_name: bool,
    /// Counts of the live walk.
    pub stats: WalkStats,
    /// Entries equal on both sides.
    pub same: u64,
    /// Entries with another owner or group.
    pub owner: u64,
    /// Entries with other permission bits.
    pub mode: u64,
    /// Entries of another type.
    pub kind: u64,
    /// Entries in the baseline, not on the host.
    pub missing: u64,
    /// Entries on the host, not in the baseline.
    pub new: u64,
    /// Baseline entries under directories that cannot be read now.
    pub unchecked: u64,
    /// Live entries under directories the baseline could not read.
    pub unknown: u64,
    /// The changes, grouped, most first.
    pub changes: Vec<ChangeGroup>,
    /// Paths that could not be examined now.
    pub errors: u64,
    /// The first of them.
    pub error_samples: Vec<ErrorSample>,
    /// Wall time.
    pub elapsed_seconds: f64,
}

impl BaselineReport {
    /// Whether the walk saw every root whole.
    pub fn complete(&self) -> bool {
        self.stats.stopped.is_none()
    }

    /// The verdict of `baseline check` (exit 0): no owner, mode or type differs, nothing is
    /// missing, everything could be read, the walk was not cut short. New entries are allowed
    /// (services write files).
    pub fn ok(&self) -> bool {
        self.owner == 0
            && self.mode == 0
            && self.kind == 0
            && self.missing == 0
            && self.errors == 0
            && self.unchecked == 0
            && self.complete()
    }
}

/// Most groups kept; the rest are summed into the last.
const MAX_GROUPS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    change: Change,
    from: (u32, u32),
    to: (u32, u32),
    root: usize,
    top: Vec<u8>,
}

struct Group {
    count: u64,
    under: Vec<Vec<u8>>,
    samples: Vec<String>,
    order: usize,
}

/// The check's sink: counts, groups and samples.
pub(crate) struct Tally {
    roots: Vec<PathBuf>,
    samples: usize,
    pub(crate) same: u64,
    pub(crate) owner: u64,
    pub(crate) mode: u64,
    pub(crate) kind: u64,
    pub(crate) missing: u64,
    pub(crate) new: u64,
    pub(crate) unchecked: u64,
    pub(crate) unknown: u64,
    groups: HashMap<GroupKey, Group>,
    overflow: u64,
    pub(crate) errors: u64,
    pub(crate) error_samples: Vec<ErrorSample>,
    names: HashMap<GroupKey, (Option<String>, Option<String>)>,
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Char => "char",
        FileKind::Block => "block",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
    }
}

fn kind_code(k: FileKind) -> u32 {
    match k {
        FileKind::File => 0,
        FileKind::Dir => 1,
        FileKind::Symlink => 2,
        FileKind::Fifo => 3,
        FileKind::Socket => 4,
        FileKind::Char => 5,
        FileKind::Block => 6,
    }
}

fn kind_of_code(c: u32) -> FileKind {
    match c {
        1 => FileKind::Dir,
        2 => FileKind::Symlink,
        3 => FileKind::Fifo,
        4 => FileKind::Socket,
        5 => FileKind::Char,
        6 => FileKind::Block,
        _ => FileKind::File,
    }
}

impl Tally {
    pub(crate) fn new(roots: Vec<PathBuf>, samples: usize) -> Self {
        Tally {
            roots,
            samples,
            same: 0,
            owner: 0,
            mode: 0,
            kind: 0,
            missing: 0,
            new: 0,
            unchecked: 0,
            unknown: 0,
            groups: HashMap::new(),
            overflow: 0,
            errors: 0,
            error_samples: Vec::new(),
            names: HashMap::new(),
        }
    }

    fn add(&mut self, m: &Matcher, key: GroupKey, dir: &[Vec<u8>], name: &[u8]) {
        let n = self.groups.len();
        if !self.groups.contains_key(&key) && n >= MAX_GROUPS {
            self.overflow += 1;
            return;
        }
        let root = self.roots.get(key.root).cloned().unwrap_or_default();
        if key.change == Change::Owner && !self.names.contains_key(&key) {
            let base = match (m.base_user(key.from.0), m.base_group(key.from.1)) {
                (None, None) => None,
                (u, g) => Some(format!("{}:{}", u.unwrap_or("?"), g.unwrap_or("?"))),
            };
            let live = match (m.live_user(key.to.0), m.live_group(key.to.1)) {
                (None, None) => None,
                (u, g) => Some(format!("{}:{}", u.as_deref().unwrap_or("?"), g.as_deref().unwrap_or("?"))),
            };
            self.names.insert(key.clone(), (base, live));
        }
        let g = self.groups.entry(key).or_insert_with(|| Group {
            count: 0,
            under: Vec::new(),
            samples: Vec::new(),
            order: n,
        });
        let path: Vec<&[u8]> = dir.iter().map(Vec::as_slice).chain((name != b".").then_some(name)).collect();
        if g.count == 0 {
            g.under = path.iter().map(|c| c.to_vec()).collect();
        } else {
            let keep = g.under.iter().zip(&path).take_while(|(a, b)| a.as_slice() == **b).count();
            g.under.truncate(keep);
        }
        g.count += 1;
        if g.samples.len() < self.samples {
            g.samples.push(entry_path(&root, dir, name));
        }
    }

    pub(crate) fn groups(&self) -> Vec<ChangeGroup> {
        let mut out: Vec<(&GroupKey, &Group)> = self.groups.iter().collect();
        out.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.1.order.cmp(&b.1.order)));
        out.into_iter()
            .map(|(k, g)| {
                let (from, to) = match k.change {
                    Change::Owner => (format!("{}:{}", k.from.0, k.from.1), format!("{}:{}", k.to.0, k.to.1)),
                    Change::Mode => (format!("{:04o}", k.from.0), format!("{:04o}", k.to.0)),
                    Change::Type => (kind_name(kind_of_code(k.from.0)).into(), kind_name(kind_of_code(k.to.0)).into()),
                    Change::Missing | Change::New => (String::new(), String::new()),
                };
                let (from_names, to_names) = self.names.get(k).cloned().unwrap_or((None, None));
                let mut under = Vec::new();
                for (i, c) in g.under.iter().enumerate() {
                    if i > 0 {
                        under.push(b'/');
                    }
                    under.extend_from_slice(c);
                }
                ChangeGroup {
                    change: k.change,
                    from,
                    to,
                    from_names,
                    to_names,
                    root: self.roots.get(k.root).map(|r| escape_path(r)).unwrap_or_default(),
                    under: escape(&under),
                    count: g.count,
                    samples: g.samples.clone(),
                }
            })
            .collect()
    }
}

fn top_of(dir: &[Vec<u8>], name: &[u8]) -> Vec<u8> {
    match dir.first() {
        Some(t) => t.clone(),
        None if name == b"." => Vec::new(),
        None => name.to_vec(),
    }
}

impl Sink for Tally {
    fn same(&mut self, n: u64) {
        self.same += n;
    }

    fn found(&mut self, m: &Matcher, root: usize, dir: &[Vec<u8>], _live_dir: Option<&Dir>, f: Found<'_>) {
        match f {
            Found::Both { base, live, name, changes } => {
                let name = name.to_bytes();
                let top = top_of(dir, name);
                if changes.kind {
                    self.kind += 1;
                    let to = kind_of_mode(live.mode).map_or(0, kind_code);
                    let key =
                        GroupKey { change: Change::Type, from: (kind_code(base.kind), 0), to: (to, 0), root, top };
                    self.add(m, key, dir, name);
                    return;
                }
                if changes.owner {
                    self.owner += 1;
                    let key = GroupKey {
                        change: Change::Owner,
                        from: (base.uid, base.gid),
                        to: (live.uid, live.gid),
                        root,
                        top: top.clone(),
                    };
                    self.add(m, key, dir, name);
                }
                if changes.mode {
                    self.mode += 1;
                    let key =
                        GroupKey { change: Change::Mode, from: (base.mode, 0), to: (live.mode & 0o7777, 0), root, top };
                    self.add(m, key, dir, name);
                }
            }
            Found::Missing { name, .. } => {
                self.missing += 1;
                let key = GroupKey { change: Change::Missing, from: (0, 0), to: (0, 0), root, top: top_of(dir, name) };
                self.add(m, key, dir, name);
            }
            Found::New { name, .. } => {
                self.new += 1;
                let name = name.to_bytes();
                let key = GroupKey { change: Change::New, from: (0, 0), to: (0, 0), root, top: top_of(dir, name) };
                self.add(m, key, dir, name);
            }
        }
    }

    fn unchecked(&mut self, n: u64) {
        self.unchecked += n;
    }

    fn unknown(&mut self, n: u64) {
        self.unknown += n;
    }

    fn problems(&mut self, dir: &Dir) {
        let mut note = |e: ErrorSample| {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(e);
            }
        };
        if let Some(u) = &dir.unread {
            self.errors += 1;
            let (op, error) = match u {
                Unread::Error(op, e) => (*op, std::io::Error::from(*e).to_string()),
                Unread::Refused(why) => (crate::scan::Op::Open, why.clone()),
            };
            note(ErrorSample { path: escape_path(&dir.path()), op, error });
        }
        for p in &dir.problems {
            self.errors += 1;
            note(ErrorSample {
                path: escape_path(&p.path),
                op: p.op,
                error: std::io::Error::from(p.errno).to_string(),
            });
        }
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

impl Tally {
    /// The report of a check whose walk gave `stats`.
    pub(crate) fn report(
        &self,
        opts: &CheckOptions,
        header: &crate::model::baseline::Header,
        live_roots: &[PathBuf],
        stats: WalkStats,
        start: Instant,
    ) -> BaselineReport {
        BaselineReport {
            baseline: escape_path(&opts.baseline),
            taken_on: header.host.clone(),
            taken_at: header.created.clone(),
            roots: header
                .roots
                .iter()
                .zip(live_roots)
                .map(|(b, l)| RootPair { baseline: b.clone(), live: escape_path(l) })
                .collect(),
            by_name: opts.by_name,
            stats,
            same: self.same,
            owner: self.owner,
            mode: self.mode,
            kind: self.kind,
            missing: self.missing,
            new: self.new,
            unchecked: self.unchecked,
            unknown: self.unknown,
            changes: self.groups(),
            errors: self.errors,
            error_samples: self.error_samples.clone(),
            elapsed_seconds: start.elapsed().as_secs_f64(),
        }
    }
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
