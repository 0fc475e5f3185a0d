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

use serde::{Deserialize, Serialize};

use crate::model::fs::FileKind;

mod encode;
mod parse;

pub use encode::{EncodeError, Encoder, IdNames};
pub use parse::{Block, FormatError, Parser, Record, validate};

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

#[cfg(test)]
mod tests;
