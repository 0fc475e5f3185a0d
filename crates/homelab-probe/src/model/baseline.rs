//! The ownership baseline format, version 1: what `baseline take` records and `baseline
//! check`/`restore` read. This file is the format's definition (docs/baseline.md says it for
//! users); the zstd layer around it and the walk that fills it live above `model`.
//!
//! A baseline file is one zstd frame (with its content checksum). Decompressed, it is:
//!
//! ```text
//! "homelab-probe baseline\n"   magic, 23 bytes
//! varint version               1
//! varint n, n bytes            the header: JSON (Header: tool, host, created, roots,
//!                              cross_mounts, exclude)
//! records...                   each starts with one tag byte
//! ```
//!
//! Records (every integer is an unsigned LEB128 varint; names and path components are a varint
//! length and that many raw bytes, so any file name round-trips):
//!
//! | tag | record | fields |
//! |---|---|---|
//! | `u` | user name | uid, name |
//! | `g` | group name | gid, name |
//! | `r` | a root starts | index, then the root directory itself: kind, uid, gid, mode |
//! | `d` | a directory's entries | path, defaults (uid, gid, file mode, directory mode), count, entries |
//! | `e` | a directory that could not be read | path, errno |
//! | `z` | a root ends | index, entries recorded under it (the root included) |
//! | `t` | the end | entries, directories, unreadable directories (of every root) |
//!
//! - **Order.** Roots in the header's order. Within a root, directories in depth-first
//!   pre-order with names sorted bytewise: the first block is the root's own (empty path),
//!   and every block's path is greater than the one before when compared component by
//!   component. So a reader can walk the live tree in the same order and merge the two
//!   streams holding one directory of each, never the whole tree.
//! - **Paths** of `d` and `e` are relative to the root and coded against the previous block's
//!   path: how many leading components to keep, how many follow, then those components.
//! - **Owners and modes as mtree's `/set`**: a block's defaults are its most common owner
//!   (uid and gid together), its most common mode among entries that are not directories or
//!   symbolic links, and among directories. An entry carries a uid, gid or mode only where it
//!   differs from the default.
//! - **An entry** is a flags byte (bits 0-2: kind 0 file, 1 directory, 2 symbolic link, 3 FIFO,
//!   4 socket, 5 character device, 6 block device; bit 3: a uid follows; bit 4: a gid follows;
//!   bit 5: a mode follows; bits 6 and 7 zero), its name coded against the previous name of
//!   the block (bytes shared with it, then the rest), then the uid, gid and mode present.
//!   Names are sorted, unique, not empty, without `/` or NUL, not `.` or `..`. A symbolic
//!   link has no mode (Linux has none to change): it reads as `0777`.
//! - **Modes** are the permission bits with set-user-ID, set-group-ID and sticky (`0o7777`).
//! - **Names of users and groups** (`u`, `g`) come before the first record that uses the id;
//!   an id without a name on the recording host has none.
//! - **Nothing partial**: the `z` and `t` records repeat the counts, the stream must end right
//!   after `t`, and a reader ([`Parser`]) returns an error, with the byte offset in the
//!   decompressed stream, for anything else (truncation, an unknown tag, names out of order,
//!   counts that do not add up).

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::model::fs::FileKind;

/// The magic that starts the decompressed stream.
pub const MAGIC: &[u8] = b"homelab-probe baseline\n";
/// The format version this library writes and reads.
pub const BASELINE_VERSION: u64 = 1;
/// Longest header accepted (JSON).
pub const MAX_HEADER: u64 = 1 << 20;
/// Longest name or path component accepted (Linux's `NAME_MAX` is 255; some filesystems
/// allow more bytes for multibyte names).
pub const MAX_NAME: u64 = 4096;
/// Longest user or group name accepted.
pub const MAX_ID_NAME: u64 = 256;
/// Most entries one directory block may hold.
pub const MAX_BLOCK_ENTRIES: u64 = 1 << 28;
/// Deepest directory accepted (components of a block path).
pub const MAX_DEPTH: u64 = 1 << 16;

/// The JSON header: where and how the baseline was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Header {
    /// The program that wrote it (`homelab-verify 0.1.0`).
    pub tool: String,
    /// The host name of the machine it was taken on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When it was taken (RFC 3339, UTC).
    pub created: String,
    /// The roots: absolute paths without symbolic links, escaped as `scan::escape` writes them.
    pub roots: Vec<String>,
    /// Whether other filesystems under the roots were descended.
    #[serde(default)]
    pub cross_mounts: bool,
    /// Exclude globs applied while walking (a check applies the same).
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Header {
    /// A header for `roots` (escaped absolute paths).
    pub fn new(tool: String, host: Option<String>, created: String, roots: Vec<String>) -> Self {
        Header { tool, host, created, roots, cross_mounts: false, exclude: Vec::new() }
    }
}

/// Type, owner and permission bits of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryStat {
    /// File type.
    pub kind: FileKind,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Permission bits with set-user-ID, set-group-ID and sticky (`0o7777`); `0o777` for a
    /// symbolic link.
    pub mode: u32,
}

impl EntryStat {
    /// From `stx_mode`/`st_mode` (type and permission bits), uid and gid; `None` for a type
    /// Linux does not have.
    pub fn from_mode(st_mode: u32, uid: u32, gid: u32) -> Option<Self> {
        let kind = kind_of_mode(st_mode)?;
        let mode = if kind == FileKind::Symlink { 0o777 } else { st_mode & 0o7777 };
        Some(EntryStat { kind, uid, gid, mode })
    }
}

/// The file type of `st_mode`'s type bits.
pub fn kind_of_mode(st_mode: u32) -> Option<FileKind> {
    Some(match st_mode & 0o170000 {
        0o100000 => FileKind::File,
        0o040000 => FileKind::Dir,
        0o120000 => FileKind::Symlink,
        0o010000 => FileKind::Fifo,
        0o140000 => FileKind::Socket,
        0o020000 => FileKind::Char,
        0o060000 => FileKind::Block,
        _ => return None,
    })
}

fn kind_code(k: FileKind) -> u8 {
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

fn kind_of_code(c: u8) -> Option<FileKind> {
    Some(match c {
        0 => FileKind::File,
        1 => FileKind::Dir,
        2 => FileKind::Symlink,
        3 => FileKind::Fifo,
        4 => FileKind::Socket,
        5 => FileKind::Char,
        6 => FileKind::Block,
        _ => return None,
    })
}

/// Which default an entry's mode is compared with.
fn mode_class(k: FileKind) -> Option<usize> {
    match k {
        FileKind::Dir => Some(1),
        FileKind::Symlink => None,
        _ => Some(0),
    }
}

const F_UID: u8 = 1 << 3;
const F_GID: u8 = 1 << 4;
const F_MODE: u8 = 1 << 5;

/// A block's defaults: the `/set` line of mtree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Defaults {
    /// The most common uid:gid pair's uid.
    pub uid: u32,
    /// The most common uid:gid pair's gid.
    pub gid: u32,
    /// The most common mode of the entries that are not directories or symbolic links.
    pub file_mode: u32,
    /// The most common mode of the directories.
    pub dir_mode: u32,
}

/// The most common value of `items` (ties: the smallest), or `None` when empty. Counting with
/// a short list: a directory has a handful of distinct owners and modes.
fn most_common<T: Copy + Ord + Eq + std::hash::Hash>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut small: Vec<(T, u64)> = Vec::new();
    let mut big: Option<std::collections::HashMap<T, u64>> = None;
    for it in items {
        if let Some(map) = &mut big {
            *map.entry(it).or_default() += 1;
        } else if let Some(slot) = small.iter_mut().find(|(v, _)| *v == it) {
            slot.1 += 1;
        } else if small.len() < 16 {
            small.push((it, 1));
        } else {
            let mut map: std::collections::HashMap<T, u64> = small.drain(..).collect();
            *map.entry(it).or_default() += 1;
            big = Some(map);
        }
    }
    let all: Vec<(T, u64)> = match big {
        Some(map) => map.into_iter().collect(),
        None => small,
    };
    all.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map(|(v, _)| v)
}

impl Defaults {
    /// The defaults of a block holding `entries`.
    pub fn of<'a>(entries: impl Iterator<Item = &'a EntryStat> + Clone) -> Self {
        let (uid, gid) = most_common(entries.clone().map(|e| (e.uid, e.gid))).unwrap_or((0, 0));
        let file_mode = most_common(entries.clone().filter(|e| mode_class(e.kind) == Some(0)).map(|e| e.mode));
        let dir_mode = most_common(entries.filter(|e| e.kind == FileKind::Dir).map(|e| e.mode));
        Defaults { uid, gid, file_mode: file_mode.unwrap_or(0o644), dir_mode: dir_mode.unwrap_or(0o755) }
    }

    fn mode_for(&self, k: FileKind) -> Option<u32> {
        match mode_class(k) {
            Some(0) => Some(self.file_mode),
            Some(_) => Some(self.dir_mode),
            None => None,
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Compares two paths (component lists) in the order of a depth-first walk with sorted names:
/// component by component, bytewise; a path comes before the paths below it.
pub fn walk_order(a: &[impl AsRef<[u8]>], b: &[impl AsRef<[u8]>]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.as_ref().cmp(y.as_ref()) {
            std::cmp::Ordering::Equal => {}
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

/// Writes a baseline's decompressed stream to `W` (the caller compresses): the magic and
/// header at [`Encoder::new`], then records in walk order, then the end at
/// [`Encoder::finish`]. Names of users and groups are asked of `names` the first time an id
/// is used.
pub struct Encoder<W: Write> {
    out: W,
    buf: Vec<u8>,
    roots: usize,
    root: Option<RootCounts>,
    prev_path: Vec<Vec<u8>>,
    users_seen: std::collections::HashSet<u32>,
    groups_seen: std::collections::HashSet<u32>,
    totals: Totals,
    written: u64,
}

#[derive(Debug, Clone, Copy)]
struct RootCounts {
    index: usize,
    entries: u64,
    blocks: u64,
}

/// The counts of the end record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Entries recorded, every root itself included.
    pub entries: u64,
    /// Directories whose entries were recorded.
    pub directories: u64,
    /// Directories that could not be read.
    pub unreadable: u64,
}

/// Names of users and groups for [`Encoder`]: `None` when the id has no name.
pub trait IdNames {
    /// The user name of `uid`.
    fn user(&mut self, uid: u32) -> Option<String>;
    /// The group name of `gid`.
    fn group(&mut self, gid: u32) -> Option<String>;
}

/// Why an [`Encoder`] call was refused: the caller broke the order or structure (a bug, not
/// bad input), or the writer failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// Records out of order or out of place.
    #[error("baseline encoder: {0}")]
    Order(&'static str),
}

impl<W: Write> Encoder<W> {
    /// Writes the magic, the version and `header`.
    pub fn new(out: W, header: &Header) -> Result<Self, EncodeError> {
        let json = serde_json::to_vec(header).map_err(io::Error::from)?;
        let mut e = Encoder {
            out,
            buf: Vec::with_capacity(1 << 16),
            roots: header.roots.len(),
            root: None,
            prev_path: Vec::new(),
            users_seen: Default::default(),
            groups_seen: Default::default(),
            totals: Totals::default(),
            written: 0,
        };
        e.buf.extend_from_slice(MAGIC);
        put_varint(&mut e.buf, BASELINE_VERSION);
        put_bytes(&mut e.buf, &json);
        e.flush_buf()?;
        Ok(e)
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Bytes of decompressed stream written so far.
    pub fn written(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    fn names(&mut self, uid: u32, gid: u32, names: &mut dyn IdNames) {
        if self.users_seen.insert(uid)
            && let Some(n) = names.user(uid)
        {
            self.buf.push(b'u');
            put_varint(&mut self.buf, u64::from(uid));
            put_bytes(&mut self.buf, n.as_bytes());
        }
        if self.groups_seen.insert(gid)
            && let Some(n) = names.group(gid)
        {
            self.buf.push(b'g');
            put_varint(&mut self.buf, u64::from(gid));
            put_bytes(&mut self.buf, n.as_bytes());
        }
    }

    /// Starts root `index` (0, 1, ... in the header's order) with the root directory's own stat.
    pub fn root(&mut self, index: usize, stat: EntryStat, names: &mut dyn IdNames) -> Result<(), EncodeError> {
        if self.root.is_some() || index >= self.roots {
            return Err(EncodeError::Order("root started inside a root or beyond the header's roots"));
        }
        self.names(stat.uid, stat.gid, names);
        self.buf.push(b'r');
        put_varint(&mut self.buf, index as u64);
        self.buf.push(kind_code(stat.kind));
        put_varint(&mut self.buf, u64::from(stat.uid));
        put_varint(&mut self.buf, u64::from(stat.gid));
        put_varint(&mut self.buf, u64::from(stat.mode));
        self.root = Some(RootCounts { index, entries: 1, blocks: 0 });
        self.prev_path.clear();
        self.totals.entries += 1;
        self.flush_buf()?;
        Ok(())
    }

    fn path(&mut self, path: &[&[u8]]) -> Result<(), EncodeError> {
        let root = self.root.as_mut().ok_or(EncodeError::Order("directory outside a root"))?;
        let first = root.blocks == 0;
        if first != path.is_empty() {
            return Err(EncodeError::Order("the first block of a root must be the root's own, and only it"));
        }
        if !first && walk_order(path, &self.prev_path) != std::cmp::Ordering::Greater {
            return Err(EncodeError::Order("directories out of walk order"));
        }
        root.blocks += 1;
        let keep = self.prev_path.iter().zip(path).take_while(|(a, b)| a.as_slice() == **b).count();
        put_varint(&mut self.buf, keep as u64);
        put_varint(&mut self.buf, (path.len() - keep) as u64);
        for c in &path[keep..] {
            put_bytes(&mut self.buf, c);
        }
        self.prev_path.truncate(keep);
        self.prev_path.extend(path[keep..].iter().map(|c| c.to_vec()));
        Ok(())
    }

    /// The entries of the directory at `path` (components below the root; empty for the root)
    /// in bytewise order of their names.
    pub fn dir<'e>(
        &mut self,
        path: &[&[u8]],
        entries: impl Iterator<Item = (&'e [u8], EntryStat)> + Clone,
        names: &mut dyn IdNames,
    ) -> Result<(), EncodeError> {
        let stats: Vec<EntryStat> = entries.clone().map(|(_, s)| s).collect();
        let d = Defaults::of(stats.iter());
        for s in &stats {
            self.names(s.uid, s.gid, names);
        }
        self.names(d.uid, d.gid, names);
        self.buf.push(b'd');
        self.path(path)?;
        for v in [d.uid, d.gid, d.file_mode, d.dir_mode] {
            put_varint(&mut self.buf, u64::from(v));
        }
        put_varint(&mut self.buf, stats.len() as u64);
        let mut prev: &[u8] = &[];
        for (name, s) in entries {
            if name <= prev && !prev.is_empty() || name.is_empty() {
                return Err(EncodeError::Order("names not sorted, repeated or empty"));
            }
            let mut flags = kind_code(s.kind);
            let mode_default = d.mode_for(s.kind);
            if s.uid != d.uid {
                flags |= F_UID;
            }
            if s.gid != d.gid {
                flags |= F_GID;
            }
            if mode_default.is_some_and(|m| m != s.mode) {
                flags |= F_MODE;
            }
            self.buf.push(flags);
            let shared = prev.iter().zip(name).take_while(|(a, b)| a == b).count();
            put_varint(&mut self.buf, shared as u64);
            put_bytes(&mut self.buf, &name[shared..]);
            if flags & F_UID != 0 {
                put_varint(&mut self.buf, u64::from(s.uid));
            }
            if flags & F_GID != 0 {
                put_varint(&mut self.buf, u64::from(s.gid));
            }
            if flags & F_MODE != 0 {
                put_varint(&mut self.buf, u64::from(s.mode));
            }
            prev = name;
        }
        if let Some(r) = &mut self.root {
            r.entries += stats.len() as u64;
        }
        self.totals.entries += stats.len() as u64;
        self.totals.directories += 1;
        if self.buf.len() >= 1 << 16 {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// The directory at `path` could not be read (`errno`).
    pub fn unreadable(&mut self, path: &[&[u8]], errno: i32) -> Result<(), EncodeError> {
        self.buf.push(b'e');
        self.path(path)?;
        put_varint(&mut self.buf, u64::from(errno.unsigned_abs()));
        self.totals.unreadable += 1;
        Ok(())
    }

    /// Ends the current root.
    pub fn end_root(&mut self) -> Result<(), EncodeError> {
        let r = self.root.take().ok_or(EncodeError::Order("end of a root that did not start"))?;
        if r.blocks == 0 {
            return Err(EncodeError::Order("a root without its own block"));
        }
        self.buf.push(b'z');
        put_varint(&mut self.buf, r.index as u64);
        put_varint(&mut self.buf, r.entries);
        self.flush_buf()?;
        Ok(())
    }

    /// Writes the end record and returns the writer and the counts.
    pub fn finish(mut self) -> Result<(W, Totals), EncodeError> {
        if self.root.is_some() {
            return Err(EncodeError::Order("finished inside a root"));
        }
        self.buf.push(b't');
        put_varint(&mut self.buf, self.totals.entries);
        put_varint(&mut self.buf, self.totals.directories);
        put_varint(&mut self.buf, self.totals.unreadable);
        self.flush_buf()?;
        Ok((self.out, self.totals))
    }
}

/// Why a decompressed baseline stream was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The bytes are not a valid baseline, at `offset` (decompressed).
    #[error("at byte {offset} of the decompressed stream: {message}")]
    Invalid {
        /// Offset in the decompressed stream where the problem starts.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// Another format version.
    #[error("baseline format version {found}; this homelab-probe reads version {BASELINE_VERSION}")]
    Version {
        /// The version in the file.
        found: u64,
    },
    /// The underlying reader failed (for a compressed file: the zstd layer says where).
    #[error("at byte {offset} of the decompressed stream: {source}")]
    Read {
        /// Offset in the decompressed stream reached.
        offset: u64,
        /// The error of the reader.
        source: io::Error,
    },
}

impl FormatError {
    /// The decompressed offset the error names.
    pub fn offset(&self) -> Option<u64> {
        match self {
            FormatError::Invalid { offset, .. } | FormatError::Read { offset, .. } => Some(*offset),
            FormatError::Version { .. } => None,
        }
    }
}

/// One entry of a [`Block`].
#[derive(Debug, Clone, Copy)]
struct BlockEntry {
    start: u32,
    end: u32,
    stat: EntryStat,
}

/// The entries of one directory as read from a baseline.
#[derive(Debug, Default)]
pub struct Block {
    names: Vec<u8>,
    entries: Vec<BlockEntry>,
    /// The block's defaults.
    pub defaults: Defaults,
}

impl Block {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `i`: its name and stat.
    pub fn get(&self, i: usize) -> Option<(&[u8], EntryStat)> {
        let e = self.entries.get(i)?;
        Some((&self.names[e.start as usize..e.end as usize], e.stat))
    }

    /// The entries in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], EntryStat)> + '_ {
        self.entries.iter().map(|e| (&self.names[e.start as usize..e.end as usize], e.stat))
    }
}

/// A record read by [`Parser::next_record`].
#[derive(Debug)]
pub enum Record<'a> {
    /// Root `index` starts; its own stat.
    Root {
        /// Index in [`Header::roots`].
        index: usize,
        /// The root directory's type, owner and mode.
        stat: EntryStat,
    },
    /// The entries of the directory at `path` (components below the root).
    Dir {
        /// The directory, relative to the root (empty: the root).
        path: &'a [Vec<u8>],
        /// Its entries.
        block: &'a Block,
    },
    /// The directory at `path` could not be read when the baseline was taken.
    Unreadable {
        /// The directory, relative to the root.
        path: &'a [Vec<u8>],
        /// The error number.
        errno: i32,
    },
    /// Root `index` ends.
    EndRoot {
        /// Index in [`Header::roots`].
        index: usize,
    },
    /// The end: every count matched and nothing follows.
    End(Totals),
}

/// Reads a decompressed baseline stream record by record, holding one directory at a time,
/// and refuses anything that is not a whole, well-formed baseline (see the module docs).
pub struct Parser<R: Read> {
    r: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// Bytes of the stream before `buf[0]`.
    base: u64,
    /// The header.
    header: Header,
    next_root: usize,
    root: Option<RootCounts>,
    path: Vec<Vec<u8>>,
    block: Block,
    users: std::collections::HashMap<u32, String>,
    groups: std::collections::HashMap<u32, String>,
    fresh: Vec<(bool, u32, String)>,
    totals: Totals,
    done: bool,
}

/// Most distinct user and group names a baseline may carry.
const MAX_NAMES: usize = 1 << 20;

impl<R: Read> Parser<R> {
    /// Reads the magic, the version and the header.
    pub fn new(r: R) -> Result<Self, FormatError> {
        let mut p = Parser {
            r,
            buf: vec![0; 1 << 16],
            pos: 0,
            len: 0,
            base: 0,
            header: Header::new(String::new(), None, String::new(), Vec::new()),
            next_root: 0,
            root: None,
            path: Vec::new(),
            block: Block::default(),
            users: Default::default(),
            groups: Default::default(),
            fresh: Vec::new(),
            totals: Totals::default(),
            done: false,
        };
        let mut magic = [0u8; MAGIC.len()];
        for b in magic.iter_mut() {
            *b = match p.byte_or_eof()? {
                Some(b) => b,
                None => return Err(p.invalid(0, "not a homelab-probe baseline (the stream is shorter than its magic)")),
            };
        }
        if magic != MAGIC {
            return Err(p.invalid(0, "not a homelab-probe baseline (no \"homelab-probe baseline\" magic)"));
        }
        let version = p.varint("the format version")?;
        if version != BASELINE_VERSION {
            return Err(FormatError::Version { found: version });
        }
        let at = p.offset();
        let n = p.varint("the header's length")?;
        if n > MAX_HEADER {
            return Err(p.invalid(at, format!("a header of {n} bytes (at most {MAX_HEADER})")));
        }
        let at = p.offset();
        let json = p.bytes(n as usize, "the header")?;
        p.header = serde_json::from_slice(&json).map_err(|e| p.invalid(at, format!("bad header: {e}")))?;
        Ok(p)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The name the recording host had for `uid`, when it had one (known once the records
    /// using it were read).
    pub fn user_name(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(String::as_str)
    }

    /// The name the recording host had for `gid`.
    pub fn group_name(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }

    /// The user (`true`) and group names read since the last call: (user?, id, name).
    pub fn take_new_names(&mut self) -> Vec<(bool, u32, String)> {
        std::mem::take(&mut self.fresh)
    }

    /// The path of the last directory record read (components below its root).
    pub fn path(&self) -> &[Vec<u8>] {
        &self.path
    }

    /// The entries of the last directory record read.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The offset in the decompressed stream of the next byte to read.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn invalid(&self, offset: u64, message: impl Into<String>) -> FormatError {
        FormatError::Invalid { offset, message: message.into() }
    }

    fn fill(&mut self) -> Result<bool, FormatError> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.r.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.len = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(FormatError::Read { offset: self.base, source }),
            }
        }
    }

    fn byte_or_eof(&mut self) -> Result<Option<u8>, FormatError> {
        if !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    fn byte(&mut self, what: &str) -> Result<u8, FormatError> {
        let at = self.offset();
        self.byte_or_eof()?.ok_or_else(|| self.truncated(at, what))
    }

    fn truncated(&self, at: u64, what: &str) -> FormatError {
        self.invalid(at, format!("the stream ends inside {what}: the baseline is truncated"))
    }

    fn varint(&mut self, what: &str) -> Result<u64, FormatError> {
        let at = self.offset();
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte(what)?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.invalid(at, format!("{what}: a number longer than 64 bits")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let at = self.offset();
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| self.invalid(at, format!("{what}: {v} does not fit in 32 bits")))
    }

    fn mode(&mut self, what: &str) -> Result<u32, FormatError> {
        let at = self.offset();
        let v = self.u32(what)?;
        if v > 0o7777 {
            return Err(self.invalid(at, format!("{what}: {v:o} is not a mode (at most 7777 octal)")));
        }
        Ok(v)
    }

    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::with_capacity(n.min(1 << 16));
        self.bytes_into(n, what, &mut out)?;
        Ok(out)
    }

    fn bytes_into(&mut self, mut n: usize, what: &str, out: &mut Vec<u8>) -> Result<(), FormatError> {
        while n > 0 {
            let at = self.offset();
            if !self.fill()? {
                return Err(self.truncated(at, what));
            }
            let k = n.min(self.len - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            n -= k;
        }
        Ok(())
    }

    fn id_name(&mut self, what: &str) -> Result<(u32, String), FormatError> {
        let id = self.u32(what)?;
        let at = self.offset();
        let n = self.varint(what)?;
        if n == 0 || n > MAX_ID_NAME {
            return Err(self.invalid(at, format!("{what}: a name of {n} bytes")));
        }
        let at = self.offset();
        let raw = self.bytes(n as usize, what)?;
        let name = String::from_utf8(raw).map_err(|_| self.invalid(at, format!("{what}: the name is not UTF-8")))?;
        Ok((id, name))
    }

    fn kind(&mut self, code: u8, at: u64) -> Result<FileKind, FormatError> {
        kind_of_code(code).ok_or_else(|| self.invalid(at, format!("unknown file type code {code}")))
    }

    fn name_len(&mut self, what: &str) -> Result<usize, FormatError> {
        let at = self.offset();
        let n = self.varint(what)?;
        if n > MAX_NAME {
            return Err(self.invalid(at, format!("{what} of {n} bytes (at most {MAX_NAME})")));
        }
        Ok(n as usize)
    }

    fn valid_name(name: &[u8]) -> bool {
        !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
    }

    /// Reads a block path, checks it comes after the previous one and makes it current.
    fn read_path(&mut self, at: u64) -> Result<(), FormatError> {
        let root = self.root.ok_or_else(|| self.invalid(at, "a directory record outside a root"))?;
        let keep_at = self.offset();
        let keep = self.varint("a directory path")?;
        if keep > self.path.len() as u64 {
            return Err(self.invalid(keep_at, format!("keeps {keep} components of a path of {}", self.path.len())));
        }
        let add_at = self.offset();
        let add = self.varint("a directory path")?;
        if keep + add > MAX_DEPTH {
            return Err(self.invalid(add_at, format!("a path of {} components", keep + add)));
        }
        let mut fresh: Vec<Vec<u8>> = Vec::with_capacity(add as usize);
        for _ in 0..add {
            let c_at = self.offset();
            let n = self.name_len("a path component")?;
            let c = self.bytes(n, "a path component")?;
            if !Self::valid_name(&c) {
                return Err(self.invalid(c_at, "a path component that is empty, `.`, `..` or holds `/` or NUL"));
            }
            fresh.push(c);
        }
        let first = root.blocks == 0;
        let mut path: Vec<Vec<u8>> = self.path[..keep as usize].to_vec();
        path.extend(fresh);
        if first && !path.is_empty() {
            return Err(self.invalid(at, "the first directory of a root is not the root itself"));
        }
        if !first && walk_order(&path, &self.path) != std::cmp::Ordering::Greater {
            return Err(self.invalid(at, "directories out of walk order (the file was altered or is not a baseline)"));
        }
        self.path = path;
        if let Some(r) = &mut self.root {
            r.blocks += 1;
        }
        Ok(())
    }

    fn read_block(&mut self) -> Result<(), FormatError> {
        let mut d = Defaults { uid: self.u32("a directory's default uid")?, ..Defaults::default() };
        d.gid = self.u32("a directory's default gid")?;
        d.file_mode = self.mode("a directory's default file mode")?;
        d.dir_mode = self.mode("a directory's default directory mode")?;
        let at = self.offset();
        let n = self.varint("a directory's entry count")?;
        if n > MAX_BLOCK_ENTRIES {
            return Err(self.invalid(at, format!("{n} entries in one directory")));
        }
        let mut block = std::mem::take(&mut self.block);
        block.names.clear();
        block.entries.clear();
        block.defaults = d;
        let result = (|| {
            let mut prev: (usize, usize) = (0, 0);
            for _ in 0..n {
                let e_at = self.offset();
                let flags = self.byte("an entry")?;
                if flags & 0xc0 != 0 {
                    return Err(self.invalid(e_at, format!("entry flags {flags:#04x} set unknown bits")));
                }
                let kind = self.kind(flags & 7, e_at)?;
                let s_at = self.offset();
                let shared = self.varint("an entry's name")?;
                if shared > (prev.1 - prev.0) as u64 {
                    return Err(self.invalid(s_at, "a name sharing more bytes than the previous name has"));
                }
                let rest = self.name_len("an entry's name")?;
                let start = block.names.len();
                block.names.extend_from_within(prev.0..prev.0 + shared as usize);
                self.bytes_into(rest, "an entry's name", &mut block.names)?;
                let end = block.names.len();
                let name = &block.names[start..end];
                if name.len() as u64 > MAX_NAME || !Self::valid_name(name) {
                    return Err(self.invalid(e_at, "a name that is empty, `.`, `..`, too long or holds `/` or NUL"));
                }
                if prev.1 > prev.0 && name <= &block.names[prev.0..prev.1] {
                    return Err(self.invalid(e_at, "names out of order or repeated in one directory"));
                }
                if start > u32::MAX as usize - MAX_NAME as usize {
                    return Err(self.invalid(e_at, "a directory whose names exceed 4 GiB"));
                }
                let uid = if flags & F_UID != 0 { self.u32("an entry's uid")? } else { d.uid };
                let gid = if flags & F_GID != 0 { self.u32("an entry's gid")? } else { d.gid };
                let mode = if flags & F_MODE != 0 {
                    if kind == FileKind::Symlink {
                        return Err(self.invalid(e_at, "a symbolic link with a mode"));
                    }
                    self.mode("an entry's mode")?
                } else {
                    d.mode_for(kind).unwrap_or(0o777)
                };
                block.entries.push(BlockEntry {
                    start: start as u32,
                    end: end as u32,
                    stat: EntryStat { kind, uid, gid, mode },
                });
                prev = (start, end);
            }
            Ok(())
        })();
        self.block = block;
        result?;
        if let Some(r) = &mut self.root {
            r.entries += n;
        }
        self.totals.entries += n;
        self.totals.directories += 1;
        Ok(())
    }

    /// The next record; after [`Record::End`], `None`.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, FormatError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let at = self.offset();
            let Some(tag) = self.byte_or_eof()? else {
                return Err(self.invalid(at, "the stream ends before its end record: the baseline is truncated"));
            };
            match tag {
                b'u' | b'g' => {
                    let (id, name) = self.id_name(if tag == b'u' { "a user name" } else { "a group name" })?;
                    if self.users.len() + self.groups.len() >= MAX_NAMES {
                        return Err(self.invalid(at, "more than a million user or group names"));
                    }
                    self.fresh.push((tag == b'u', id, name.clone()));
                    let map = if tag == b'u' { &mut self.users } else { &mut self.groups };
                    map.insert(id, name);
                }
                b'r' => {
                    let i_at = self.offset();
                    let index = self.varint("a root record")?;
                    if self.root.is_some() {
                        return Err(self.invalid(at, "a root starts before the previous one ended"));
                    }
                    if index != self.next_root as u64 || self.next_root >= self.header.roots.len() {
                        return Err(self.invalid(i_at, format!("root {index} where root {} was due", self.next_root)));
                    }
                    let k_at = self.offset();
                    let code = self.byte("a root record")?;
                    let kind = self.kind(code, k_at)?;
                    if kind != FileKind::Dir {
                        return Err(self.invalid(k_at, "a root that is not a directory"));
                    }
                    let uid = self.u32("a root's uid")?;
                    let gid = self.u32("a root's gid")?;
                    let mode = self.mode("a root's mode")?;
                    self.root = Some(RootCounts { index: self.next_root, entries: 1, blocks: 0 });
                    self.next_root += 1;
                    self.path.clear();
                    self.totals.entries += 1;
                    return Ok(Some(Record::Root { index: index as usize, stat: EntryStat { kind, uid, gid, mode } }));
                }
                b'd' => {
                    self.read_path(at)?;
                    self.read_block()?;
                    return Ok(Some(Record::Dir { path: &self.path, block: &self.block }));
                }
                b'e' => {
                    self.read_path(at)?;
                    let e_at = self.offset();
                    let errno = self.varint("an unreadable directory's error")?;
                    let errno = i32::try_from(errno).map_err(|_| self.invalid(e_at, "an error number out of range"))?;
                    self.totals.unreadable += 1;
                    return Ok(Some(Record::Unreadable { path: &self.path, errno }));
                }
                b'z' => {
                    let index = self.varint("a root's end")?;
                    let c_at = self.offset();
                    let entries = self.varint("a root's end")?;
                    let Some(r) = self.root else {
                        return Err(self.invalid(at, "the end of a root that did not start"));
                    };
                    if index != r.index as u64 {
                        return Err(self.invalid(at, format!("the end of root {index} inside root {}", r.index)));
                    }
                    if r.blocks == 0 {
                        return Err(self.invalid(at, "a root without its own directory record"));
                    }
                    if entries != r.entries {
                        return Err(self.invalid(
                            c_at,
                            format!(
                                "root {index} ends saying {entries} entries, {} were read: the file was altered",
                                r.entries
                            ),
                        ));
                    }
                    self.root = None;
                    return Ok(Some(Record::EndRoot { index: r.index }));
                }
                b't' => {
                    let c_at = self.offset();
                    let t = Totals {
                        entries: self.varint("the end record")?,
                        directories: self.varint("the end record")?,
                        unreadable: self.varint("the end record")?,
                    };
                    if self.root.is_some() || self.next_root != self.header.roots.len() {
                        return Err(self.invalid(at, "the end record comes before every root was recorded"));
                    }
                    if t != self.totals {
                        return Err(self.invalid(
                            c_at,
                            format!(
                                "the end record says {t:?}, the stream holds {:?}: the file was altered",
                                self.totals
                            ),
                        ));
                    }
                    let end = self.offset();
                    if self.byte_or_eof()?.is_some() {
                        return Err(self.invalid(end, "data after the end record"));
                    }
                    self.done = true;
                    return Ok(Some(Record::End(t)));
                }
                other => return Err(self.invalid(at, format!("unknown record tag {other:#04x}"))),
            }
        }
    }
}

/// Parses a whole decompressed stream and returns its header and counts: the check a fuzzer
/// or a `baseline show` runs (no record is kept).
pub fn validate(bytes: &[u8]) -> Result<(Header, Totals), FormatError> {
    let mut p = Parser::new(bytes)?;
    loop {
        match p.next_record()? {
            Some(Record::End(t)) => return Ok((p.header.clone(), t)),
            Some(_) => {}
            None => return Err(p.invalid(p.offset(), "no end record")),
        }
    }
}

#[cfg(test)]
mod tests;
