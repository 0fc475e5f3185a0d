//! Reading a baseline's decompressed stream: [`Parser`] and [`validate`] (the format is in the
//! parent's docs).

use std::io::{self, Read};

use super::{
    BASELINE_VERSION, Defaults, EntryStat, F_GID, F_MODE, F_UID, Header, MAGIC, MAX_BLOCK_ENTRIES, MAX_DEPTH,
    MAX_HEADER, MAX_ID_NAME, MAX_NAME, RootCounts, Totals, kind_of_code, walk_order,
};
use crate::model::fs::FileKind;

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
