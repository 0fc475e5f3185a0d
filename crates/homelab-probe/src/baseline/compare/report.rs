//! The report of `baseline check`: what a [`Tally`] of the merge becomes ([`BaselineReport`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::baseline::{ERROR_SAMPLES, entry_path};
use crate::drift::ErrorSample;
use crate::model::baseline::kind_of_mode;
use crate::model::fs::FileKind;
use crate::scan::Progress;
use crate::scan::escape::{escape, escape_path};
use crate::scan::ordered::{Dir, Unread, WalkStats};

use super::{Found, Matcher, Sink};

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
    /// Worker threads of the walk (0: two per CPU); a restore's apply makes its changes on as
    /// many (0: one per CPU).
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

/// The result of [`check`](super::check).
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
        // Once per change (a `chown -R` makes millions): one look-up for a known group, and
        // the root's path only for a sample.
        let path = || dir.iter().map(Vec::as_slice).chain((name != b".").then_some(name));
        let root = key.root;
        let g = match self.groups.get_mut(&key) {
            Some(g) => {
                let keep = g.under.iter().zip(path()).take_while(|(a, b)| a.as_slice() == *b).count();
                g.under.truncate(keep);
                g
            }
            None => {
                let n = self.groups.len();
                if n >= MAX_GROUPS {
                    self.overflow += 1;
                    return;
                }
                if key.change == Change::Owner {
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
                let under = path().map(<[u8]>::to_vec).collect();
                self.groups.entry(key).or_insert(Group { count: 0, under, samples: Vec::new(), order: n })
            }
        };
        g.count += 1;
        if g.samples.len() < self.samples {
            let root = self.roots.get(root).map(PathBuf::as_path).unwrap_or(Path::new(""));
            g.samples.push(entry_path(root, dir, name));
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
