//! The merge of a baseline's records with the live walk (`Merge`), shared by the check and the
//! restore.

use std::io::Read;
use std::ops::ControlFlow;

use crate::model::baseline::{EntryStat, FormatError, Parser, Record, walk_order};
use crate::scan::ordered::{Dir, Event, Listed, RootStat};

use super::{Found, Matcher, Sink};

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
