//! Writing a baseline's decompressed stream: [`Encoder`] (the format is in the parent's docs).

use std::io::{self, Write};

use super::{
    BASELINE_VERSION, Defaults, EntryStat, F_GID, F_MODE, F_UID, Header, MAGIC, RootCounts, Totals, kind_code,
    put_bytes, put_varint, walk_order,
};

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
