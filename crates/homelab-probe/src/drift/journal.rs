//! The undo journal of a drift fix: JSON Lines, one object per line.
//!
//! ```text
//! {"journal":"homelab-probe drift fix","version":1,"created":"2026-11-25T01:02:03Z","roots":["/mnt/media"],"root_devs":[2049],"uid":1000,"gid":110}
//! {"path":"/mnt/media/Movies/a.mkv","dev":2049,"ino":1234,"btime":"1764032523.123456789","mode":33188,"uid":0,"gid":0,"new_uid":1000,"new_gid":110}
//! ```
//!
//! - The first line is the [`Header`]: the roots the fix was confined to (absolute, no
//!   symbolic links), the device number of each root when the fix ran, and the new owner.
//! - Every other line is a [`Record`] of one change: the path (escaped as
//!   [`crate::scan::escape`] says, so any file name round-trips and no name can break a line),
//!   the file's identity (`dev`, `ino` and, where the filesystem has it, `btime`), its `stx_mode` and its owner before the change.
//! - Records are written and `fdatasync`ed *before* the changes they describe are made, one
//!   batch (one directory) at a time. So after a crash or a kill at any point, every change
//!   that happened has its record on disk. A last line without its newline is a torn write
//!   whose changes never happened; [`read`] reports it and skips it.
//! - A record may describe a change that did not happen (the process died between the sync and
//!   the `fchownat`, or the file changed in between): undo sees the file already has its old
//!   owner and leaves it.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::drift::DriftError;
use crate::scan::FileId;
use crate::scan::escape::escape_path;

/// The `journal` value of a drift fix's header.
pub const JOURNAL_KIND: &str = "homelab-probe drift fix";
/// The `journal` value of a baseline restore's header: the same format, one owner and mode per
/// record (`new_mode` set), no `uid`/`gid` in the header.
pub const RESTORE_KIND: &str = "homelab-probe baseline restore";
/// The journal format version this library writes and reads.
pub const JOURNAL_VERSION: u32 = 1;

/// The first line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`JOURNAL_KIND`] or [`RESTORE_KIND`].
    pub journal: String,
    /// [`JOURNAL_VERSION`].
    pub version: u32,
    /// When the fix started, RFC 3339 UTC.
    pub created: String,
    /// The roots (escaped absolute paths); every record is under one of them.
    pub roots: Vec<String>,
    /// Device number of each root when the fix ran (device numbers can change across boots;
    /// undo maps a root's old number to its current one).
    pub root_devs: Vec<u64>,
    /// The owner the fix set (a drift fix; a restore sets one per record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The group the fix set (a drift fix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The baseline file a restore read (escaped path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Escaped absolute path.
    pub path: String,
    /// Device number of the file when the fix ran.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Birth time (`stx_btime`, `seconds.nanoseconds`) when the filesystem keeps one: inode
    /// numbers are reused (ext4 gives a file created after a delete the same number at
    /// once), so undo needs this to tell the fixed file from a newcomer at the same path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub btime: Option<String>,
    /// `stx_mode` before the change (type and permission bits; `chown` clears set-user-ID
    /// and set-group-ID bits of files, and undo puts them back).
    pub mode: u32,
    /// The file capabilities (`security.capability`, hex) of a regular file that had them:
    /// `chown` removes them, and undo puts them back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<String>,
    /// Owner before the change.
    pub uid: u32,
    /// Group before the change.
    pub gid: u32,
    /// Owner set.
    pub new_uid: u32,
    /// Group set.
    pub new_gid: u32,
    /// The permission bits (`0o7777`) a restore set; undo checks the entry still has them and
    /// puts `mode`'s back. Absent in a drift fix's records (which change owners only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_mode: Option<u32>,
}

/// An open journal being written.
#[derive(Debug)]
pub struct Writer {
    file: File,
    id: FileId,
}

fn jerr(path: &Path, message: impl std::fmt::Display) -> DriftError {
    DriftError::Journal { path: path.to_path_buf(), message: message.to_string() }
}

impl Writer {
    /// Creates `path` (which must not exist; mode 0600), writes `header` and syncs the file
    /// and its directory, so the journal exists on disk before any change.
    pub fn create(path: &Path, header: &Header) -> Result<Self, DriftError> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| jerr(path, format!("cannot create the journal: {e}")))?;
        let mut line = serde_json::to_string(header).map_err(|e| jerr(path, e))?;
        line.push('\n');
        file.write_all(line.as_bytes()).and_then(|_| file.sync_all()).map_err(|e| jerr(path, e))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| jerr(dir, format!("cannot sync: {e}")))?;
        let stx = rustix::fs::statx(&file, c"", rustix::fs::AtFlags::EMPTY_PATH, rustix::fs::StatxFlags::INO)
            .map_err(|e| jerr(path, e))?;
        let id = FileId { dev: rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor), ino: stx.stx_ino };
        Ok(Writer { file, id })
    }

    /// The journal file's own identity (the walk must not report it).
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Appends `lines` (each ending in a newline) and waits until they are on disk.
    pub fn append_synced(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.append(lines)?;
        self.file.sync_data()
    }

    /// Appends `lines` (each ending in a newline), not yet on disk: sync through a
    /// [`Writer::syncer`] before making the changes they describe.
    pub fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.file.write_all(lines)
    }

    /// A handle of one's own on the journal (reopened through `/proc/self/fd`: the same inode,
    /// never whatever has its path now), for threads that append under a lock and wait for the
    /// disk outside it: `sync_data` on it covers every write made before, and a failed
    /// writeback is reported once to every such handle, also when another thread's sync saw
    /// it first (unlike a `dup`, which shares one report).
    pub fn syncer(&self) -> std::io::Result<File> {
        use std::os::fd::AsRawFd;
        File::open(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// A journal read back.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    lines: BufReader<File>,
    line_no: usize,
    /// The header.
    pub header: Header,
    /// Set when the last line had no newline and was not a whole record (a torn write).
    pub torn_tail: bool,
}

/// What [`Reader::next_record`] found.
#[derive(Debug)]
pub enum Line {
    /// A record and its 1-based line number.
    Record(usize, Record),
    /// A line that is not a record: its number and what is wrong.
    Bad(usize, String),
}

/// Opens `path` and reads its header.
pub fn read(path: &Path) -> Result<Reader, DriftError> {
    let file = File::open(path).map_err(|e| jerr(path, format!("cannot open the journal: {e}")))?;
    let mut lines = BufReader::new(file);
    let mut first = Vec::new();
    lines.read_until(b'\n', &mut first).map_err(|e| jerr(path, e))?;
    let header: Header =
        serde_json::from_slice(&first).map_err(|e| jerr(path, format!("line 1: not a drift journal header: {e}")))?;
    if header.journal != JOURNAL_KIND && header.journal != RESTORE_KIND {
        return Err(jerr(path, format!("line 1: not a drift or restore journal (journal = {:?})", header.journal)));
    }
    if header.version != JOURNAL_VERSION {
        return Err(jerr(
            path,
            format!("line 1: unsupported journal version {} (this release reads {JOURNAL_VERSION})", header.version),
        ));
    }
    if header.roots.len() != header.root_devs.len() {
        return Err(jerr(path, "line 1: roots and root_devs differ in length"));
    }
    Ok(Reader { path: path.to_path_buf(), lines, line_no: 1, header, torn_tail: false })
}

impl Reader {
    /// The next record, streaming (a journal of millions of changes is never held whole).
    pub fn next_record(&mut self) -> Result<Option<Line>, DriftError> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = self.lines.read_until(b'\n', &mut buf).map_err(|e| jerr(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let complete = buf.ends_with(b"\n");
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(match serde_json::from_slice::<Record>(&buf) {
                Ok(r) => Line::Record(self.line_no, r),
                Err(_) if !complete => {
                    self.torn_tail = true;
                    return Ok(None);
                }
                Err(e) => Line::Bad(self.line_no, format!("{}:{}: {e}", escape_path(&self.path), self.line_no)),
            }));
        }
    }
}
