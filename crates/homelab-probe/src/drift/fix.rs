//! Fixing drift, and undoing a fix.
//!
//! The safety model (docs/drift.md says it for users):
//! - a plan ([`crate::drift::scan`]) changes nothing; [`apply`] is the only writer;
//! - roots are refused when they are a system directory by identity (`/` through a bind
//!   mount included, [`crate::drift::guard`]), given through a symbolic link or with `..`
//!   (`prepare_roots`); the walk itself opens every directory relative to its parent with
//!   `O_NOFOLLOW`, so no change can land outside the roots;
//! - the fix is planned first (a read-only walk): a system directory reached anywhere refuses
//!   it before the journal exists, and the plan sees which files have links it did not see;
//!   set-id files, files with capabilities and files with links outside are left alone unless
//!   allowed (chown clears those bits; a link outside changes with the file);
//! - every change is journaled ([`crate::drift::journal`]) and synced *before* it is made;
//! - each change is `fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW)` relative to the
//!   directory the entry was read from, right after a fresh `statx` shows it is still the same
//!   inode with the same owner (a file replaced since the scan is left alone);
//! - [`undo`] restores each recorded owner only on the same inode (device and inode number)
//!   that still has the owner the fix gave it: it never "restores" onto a different file that
//!   took the path, nor over an owner someone set since.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, Gid, Mode, OFlags, StatxFlags, Uid};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::drift::entry;
use crate::drift::journal::{self, Header, Line, Record};
use crate::drift::{DirRef, DriftError, DriftOptions, DriftReport, Offenders, prepare_roots, scan_prepared};
use crate::scan::FileId;
use crate::scan::escape::{escape, escape_path, unescape_path};

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FixSummary {
    /// The journal (escaped path).
    pub journal: String,
    /// Owners changed (a file with several names counts once per name).
    pub changed: u64,
    /// Entries left alone because they changed (or vanished) between the scan and the fix.
    pub skipped: u64,
    /// Changes that failed (e.g. `EPERM` when not root); their records are in the journal
    /// and undo leaves them.
    pub failed: u64,
    /// The first failures: path and error.
    pub failures: Vec<String>,
    /// Set-id files and files with capabilities left alone (no `allow_setid`).
    pub held_setid: u64,
    /// Files left alone because they have hard links the walk did not see (no
    /// `include_outside_links`).
    pub held_outside_links: u64,
    /// Changed files whose set-user-ID/set-group-ID bits chown cleared (`allow_setid`).
    pub cleared_setid: u64,
    /// Changed files whose capabilities chown removed (`allow_setid`).
    pub cleared_capabilities: u64,
    /// The first of those: path and what was cleared. Undo puts it back; the fix never
    /// re-applies it under the new owner.
    pub cleared: Vec<String>,
    /// Changed files with hard links outside the walk (`include_outside_links`): their other
    /// names changed too.
    pub changed_outside_links: u64,
    /// Set when the walk reached a system directory and stopped there (something was mounted
    /// after the plan): what it was. The changes made before it are in the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl FixSummary {
    /// Entries the fix left alone on purpose (set-id, capabilities, links outside).
    pub fn held(&self) -> u64 {
        self.held_setid + self.held_outside_links
    }
}

const MASK: StatxFlags = StatxFlags::TYPE.union(StatxFlags::UID).union(StatxFlags::GID).union(StatxFlags::INO);
const FIX_MASK: StatxFlags = MASK.union(StatxFlags::MODE).union(StatxFlags::BTIME).union(StatxFlags::NLINK);

fn dev_of(stx: &rustix::fs::Statx) -> u64 {
    rustix::fs::makedev(stx.stx_dev_major, stx.stx_dev_minor)
}

/// `seconds.nanoseconds` of the birth time, when the filesystem reported one.
fn btime_of(stx: &rustix::fs::Statx) -> Option<String> {
    (stx.stx_mask & StatxFlags::BTIME.bits() != 0)
        .then(|| format!("{}.{:09}", stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec))
}

const CAPS_XATTR: &CStr = c"security.capability";

/// The path of entry `name` of `dir` through `/proc/self/fd`, so it is resolved from the open
/// directory, never from the root again.
fn proc_path(dir: &DirRef<'_>, name: &CStr) -> Option<CString> {
    use rustix::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", dir.fd().as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    CString::new(p).ok()
}

/// The `security.capability` attribute of entry `name` of `dir`, if it has one (`lgetxattr`
/// through [`proc_path`]).
pub(crate) fn file_caps(dir: &DirRef<'_>, name: &CStr) -> Option<Vec<u8>> {
    let p = proc_path(dir, name)?;
    let mut buf = [0u8; 256];
    let n = rustix::fs::lgetxattr(p.as_c_str(), CAPS_XATTR, &mut buf[..]).ok()?;
    Some(buf[..n].to_vec())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    (s.len() % 2 == 0).then_some(())?;
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Capability names by number (linux/capability.h).
const CAP_NAMES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// A `security.capability` value as getcap(8) writes it (`cap_net_raw=ep`), from its
/// `vfs_cap_data` layout (linux/capability.h: `magic_etc` with the revision and the effective
/// flag, then permitted and inheritable words, low then high; revision 3 adds the root uid).
/// Anything else is shown in hex.
pub fn caps_text(value: &[u8]) -> String {
    let word = |i: usize| value.get(i * 4..i * 4 + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let Some(magic) = word(0) else { return format!("0x{}", hex(value)) };
    let words = match (magic & 0xff00_0000, value.len()) {
        (0x0100_0000, 12) => 1,
        (0x0200_0000, 20) | (0x0300_0000, 24) => 2,
        _ => return format!("0x{}", hex(value)),
    };
    let effective = magic & 1 != 0;
    let (mut permitted, mut inheritable) = (0u64, 0u64);
    for w in 0..words {
        permitted |= u64::from(word(1 + 2 * w).unwrap_or(0)) << (32 * w);
        inheritable |= u64::from(word(2 + 2 * w).unwrap_or(0)) << (32 * w);
    }
    // Capabilities grouped by their flags, in number order: "cap_a,cap_b=ep cap_c=i".
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for bit in 0..64 {
        let (p, i) = (permitted >> bit & 1 == 1, inheritable >> bit & 1 == 1);
        if !p && !i {
            continue;
        }
        let flags =
            format!("{}{}{}", if effective { "e" } else { "" }, if i { "i" } else { "" }, if p { "p" } else { "" });
        let name = CAP_NAMES.get(bit).map_or_else(|| format!("cap_{bit}"), |n| format!("cap_{n}"));
        match groups.iter_mut().find(|(f, _)| *f == flags) {
            Some((_, names)) => names.push(name),
            None => groups.push((flags, vec![name])),
        }
    }
    let mut text: Vec<String> = groups.into_iter().map(|(f, names)| format!("{}={f}", names.join(","))).collect();
    if text.is_empty() {
        text.push("(none)".into());
    }
    if words == 2 && value.len() == 24 {
        text.push(format!("[rootid={}]", word(5).unwrap_or(0)));
    }
    text.join(" ")
}

/// The identity the journal records: device, inode and birth time.
fn same_file(stx: &rustix::fs::Statx, id: FileId, btime: &Option<String>) -> bool {
    stx.stx_ino == id.ino && dev_of(stx) == id.dev && btime_of(stx) == *btime
}

/// One entry the fix will change, with what its change may clear.
struct Todo {
    index: usize,
    btime: Option<String>,
    setid: bool,
    caps: bool,
    linked: bool,
}

/// Plans the fix, then makes it: scans `opts.roots` once read-only ([`DriftOptions::plan_fix`]:
/// a root or directory that is a system one refuses the whole fix here, before anything is
/// written, and the plan learns which files have links the walk did not see), then creates
/// `journal_path` (it must not exist) and walks again, changing the owner of every offending
/// entry to `opts.expected`, each change journaled before it is made. Set-id files and files
/// with capabilities are left alone without [`DriftOptions::allow_setid`], files with links
/// outside the walk without [`DriftOptions::include_outside_links`]. Roots are checked with
/// `for_fix` (see the drift module: `prepare_roots`).
pub fn apply(opts: &DriftOptions, journal_path: &Path) -> Result<DriftReport, DriftError> {
    let system = opts.system_dirs();
    let roots = prepare_roots(&opts.roots, true, &system)?;
    let mut plan_opts = opts.clone();
    plan_opts.plan_fix = true;
    plan_opts.progress = None;
    let (planned, seen_links, refused) = scan_prepared(&roots, &plan_opts, &system, None, None)?;
    if let Some(r) = refused {
        return Err(DriftError::SystemDirectory(r));
    }
    let mut root_devs = Vec::with_capacity(roots.len());
    for r in &roots {
        let stx = rustix::fs::statx(CWD, r.as_path(), AtFlags::SYMLINK_NOFOLLOW, StatxFlags::INO)
            .map_err(|e| DriftError::Root { path: r.clone(), message: e.to_string() })?;
        root_devs.push(dev_of(&stx));
    }
    let header = Header {
        journal: journal::JOURNAL_KIND.into(),
        version: journal::JOURNAL_VERSION,
        created: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
            .to_string(),
        roots: roots.iter().map(|r| escape_path(r)).collect(),
        root_devs,
        uid: Some(opts.expected.uid),
        gid: Some(opts.expected.gid),
        baseline: None,
    };
    let writer = journal::Writer::create(journal_path, &header)?;
    let skip = writer.id();
    let samples = opts.samples.max(1);
    let state = Mutex::new((writer, FixSummary { journal: escape_path(journal_path), ..FixSummary::default() }));
    let (uid, gid) = (Uid::from_raw(opts.expected.uid), Gid::from_raw(opts.expected.gid));
    let expected = (opts.expected.uid, opts.expected.gid);
    let is_dir = |m: u16| u32::from(m) & 0o170000 == 0o040000;
    let sink = |_worker: usize, dir: &DirRef<'_>, entries: &Offenders<'_>| {
        // Look at each entry once more, now with its birth time: that, with device and inode,
        // is what undo will check. An entry that changed since the scan is left alone.
        let mut lines = String::new();
        let mut path = Vec::new();
        let mut todo: Vec<Todo> = Vec::with_capacity(entries.len());
        let (mut skipped, mut held_setid, mut held_links) = (0u64, 0u64, 0u64);
        for (i, e) in entries.iter().enumerate() {
            let now = match rustix::fs::statx(dir.fd(), e.name, AtFlags::SYMLINK_NOFOLLOW, FIX_MASK) {
                Ok(now) if now.stx_ino == e.id.ino && dev_of(&now) == e.id.dev => now,
                _ => {
                    skipped += 1;
                    continue;
                }
            };
            let linked = !is_dir(now.stx_mode) && now.stx_nlink > 1;
            if (now.stx_uid, now.stx_gid) != (e.owner.uid, e.owner.gid) {
                // Another name of a linked file changed through an earlier one: counted there.
                if !(linked && (now.stx_uid, now.stx_gid) == expected) {
                    skipped += 1;
                }
                continue;
            }
            // Every name of a linked file must have been seen by the plan, unless allowed.
            let all_seen = seen_links.get(&e.id).is_some_and(|&(n, seen)| n == now.stx_nlink && seen >= n);
            if linked && !opts.include_outside_links && !all_seen {
                held_links += 1;
                continue;
            }
            let mode = u32::from(now.stx_mode);
            let regular = mode & 0o170000 == 0o100000;
            let setid = regular && crate::drift::setid_cleared_by_chown(mode) != 0;
            let caps = if regular { file_caps(dir, e.name) } else { None };
            if (setid || caps.is_some()) && !opts.allow_setid {
                held_setid += 1;
                continue;
            }
            let btime = btime_of(&now);
            path.clear();
            dir.write_entry_path(e.name, &mut path);
            let rec = Record {
                path: escape(&path),
                dev: e.id.dev,
                ino: e.id.ino,
                btime: btime.clone(),
                mode,
                caps: caps.as_deref().map(hex),
                uid: e.owner.uid,
                gid: e.owner.gid,
                new_uid: opts.expected.uid,
                new_gid: opts.expected.gid,
                new_mode: None,
            };
            // Plain data: serialisation cannot fail.
            lines.push_str(&serde_json::to_string(&rec).unwrap_or_default());
            lines.push('\n');
            todo.push(Todo { index: i, btime, setid, caps: caps.is_some(), linked });
        }
        let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
        let (writer, sum) = &mut *guard;
        sum.skipped += skipped;
        sum.held_setid += held_setid;
        sum.held_outside_links += held_links;
        if todo.is_empty() {
            return;
        }
        if let Err(err) = writer.append_synced(lines.as_bytes()) {
            // Without its record on disk, no change may be made.
            sum.failed += todo.len() as u64;
            if sum.failures.len() < samples {
                sum.failures
                    .push(format!("{}: journal write failed, nothing changed here: {err}", escape_path(&dir.path())));
            }
            return;
        }
        let all: Vec<_> = entries.iter().collect();
        for t in todo {
            let e = all[t.index];
            let fail = |sum: &mut FixSummary, err: Errno| {
                sum.failed += 1;
                if sum.failures.len() < samples {
                    sum.failures.push(format!(
                        "{}: {}",
                        escape_path(&dir.entry_path(e.name)),
                        std::io::Error::from(err)
                    ));
                }
            };
            // Still the same file with the same owner, right before the change.
            match rustix::fs::statx(dir.fd(), e.name, AtFlags::SYMLINK_NOFOLLOW, FIX_MASK) {
                Ok(now)
                    if same_file(&now, e.id, &t.btime) && (now.stx_uid, now.stx_gid) == (e.owner.uid, e.owner.gid) =>
                {
                    match rustix::fs::chownat(dir.fd(), e.name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(()) => {
                            // Every name of it the walk saw changed with it: count them all
                            // here, once (the others are passed over below or never reported).
                            let (links, names) = seen_links.get(&e.id).copied().unwrap_or((1, 1));
                            sum.changed += u64::from(if t.linked { names.max(1) } else { 1 });
                            if t.linked && names < links {
                                sum.changed_outside_links += u64::from(names.max(1));
                            }
                            if t.setid || t.caps {
                                note_cleared(sum, dir, e.name, u32::from(now.stx_mode), t.caps, samples);
                            }
                        }
                        Err(err) => fail(sum, err),
                    }
                }
                // Changed meanwhile through another of its names (another worker): counted there.
                Ok(now) if t.linked && (now.stx_uid, now.stx_gid) == expected => {}
                Ok(_) | Err(Errno::NOENT) => sum.skipped += 1,
                Err(err) => fail(sum, err),
            }
        }
    };
    let (walked, _, refused) = scan_prepared(&roots, opts, &system, Some(skip), Some(&sink))?;
    let (_, mut summary) = state.into_inner().unwrap_or_else(|p| p.into_inner());
    summary.refused = refused.map(|r| r.to_string());
    // The report is the plan's walk (what was found); the fix's walk adds what it could not
    // read or where it stopped.
    let mut report = planned;
    if walked.errors > report.errors {
        report.errors = walked.errors;
        report.error_samples = walked.error_samples;
    }
    report.stats.stopped = report.stats.stopped.or(walked.stats.stopped);
    report.elapsed_seconds += walked.elapsed_seconds;
    report.fix = Some(summary);
    Ok(report)
}

/// Counts what chown really cleared on a file just changed (set-id bits, capabilities), by
/// looking again: the kernel decides, not our expectation of it.
fn note_cleared(sum: &mut FixSummary, dir: &DirRef<'_>, name: &CStr, mode_before: u32, had_caps: bool, samples: usize) {
    let mode_after = rustix::fs::statx(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MODE)
        .map_or(mode_before, |s| u32::from(s.stx_mode));
    let lost = mode_before & 0o6000 & !mode_after;
    let mut what = Vec::new();
    if lost != 0 {
        sum.cleared_setid += 1;
        what.push(format!("mode {:04o} -> {:04o}", mode_before & 0o7777, mode_after & 0o7777));
    }
    if had_caps && file_caps(dir, name).is_none() {
        sum.cleared_capabilities += 1;
        what.push("capabilities removed".to_owned());
    }
    if !what.is_empty() && sum.cleared.len() < samples {
        sum.cleared.push(format!("{}: {}", escape_path(&dir.entry_path(name)), what.join(", ")));
    }
}

/// What [`undo`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UndoReport {
    /// The journal (escaped path).
    pub journal: String,
    /// Records read.
    pub records: u64,
    /// Owners put back.
    pub restored: u64,
    /// Entries that already had their old owner (the change never happened, or was undone).
    pub already: u64,
    /// Entries left alone: gone, replaced by another file, or given another owner since the
    /// fix. Each is listed in `problems`.
    pub skipped: u64,
    /// Restores that failed, and lines that are not records.
    pub failed: u64,
    /// Whether the journal ended in a torn (half-written) line, whose change never happened.
    pub torn_tail: bool,
    /// The first problems, one sentence each.
    pub problems: Vec<String>,
}

impl UndoReport {
    /// True when every recorded change is undone (restored or already so).
    pub fn complete(&self) -> bool {
        self.skipped == 0 && self.failed == 0
    }
}

/// Most problems listed in an [`UndoReport`].
const UNDO_PROBLEMS: usize = 50;

struct UndoRoot {
    path: PathBuf,
    fd: OwnedFd,
    old_dev: u64,
    dev: u64,
}

/// Restores every owner recorded in `journal_path`. Safe to run more than once, and on the
/// journal of an interrupted fix.
pub fn undo(journal_path: &Path) -> Result<UndoReport, DriftError> {
    let mut reader = journal::read(journal_path)?;
    let bad = |message: String| DriftError::Journal { path: journal_path.to_path_buf(), message };
    let mut roots = Vec::new();
    let system = crate::drift::guard::SystemDirs::load();
    for (text, &old_dev) in reader.header.roots.iter().zip(&reader.header.root_devs) {
        let path = unescape_path(text).map_err(|e| bad(format!("line 1: root {text:?}: {e}")))?;
        let real = path.canonicalize().map_err(|e| bad(format!("root {}: {e}", escape_path(&path))))?;
        if real != path || real == Path::new("/") || !path.is_absolute() {
            return Err(bad(format!(
                "root {} is `/` or now resolves through a symbolic link (to {}): refusing to undo",
                escape_path(&path),
                escape_path(&real)
            )));
        }
        // A root that is a system directory now (a bind mount of `/` put there since) is
        // refused like a fix's root.
        system.check(&path).map_err(|r| bad(format!("root: {r}")))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, path.as_path(), flags, Mode::empty())
            .map_err(|e| bad(format!("root {}: {e}", escape_path(&path))))?;
        let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO)
            .map_err(|e| bad(format!("root {}: {e}", escape_path(&path))))?;
        roots.push(UndoRoot { path, fd, old_dev, dev: dev_of(&stx) });
    }
    let mut rep = UndoReport { journal: escape_path(journal_path), ..UndoReport::default() };
    let note = |rep: &mut UndoReport, msg: String| {
        if rep.problems.len() < UNDO_PROBLEMS {
            rep.problems.push(msg);
        }
    };
    while let Some(line) = reader.next_record()? {
        let (no, rec) = match line {
            Line::Record(no, rec) => (no, rec),
            Line::Bad(_, msg) => {
                rep.failed += 1;
                note(&mut rep, msg);
                continue;
            }
        };
        rep.records += 1;
        match undo_one(&roots, &rec) {
            Ok(UndoOutcome::Restored) => rep.restored += 1,
            Ok(UndoOutcome::Already) => rep.already += 1,
            Ok(UndoOutcome::Skipped(why)) => {
                rep.skipped += 1;
                note(&mut rep, format!("{}: left alone: {why} (journal line {no})", rec.path));
            }
            Err(why) => {
                rep.failed += 1;
                note(&mut rep, format!("{}: {why} (journal line {no})", rec.path));
            }
        }
    }
    rep.torn_tail = reader.torn_tail;
    Ok(rep)
}

enum UndoOutcome {
    Restored,
    Already,
    Skipped(String),
}

fn undo_one(roots: &[UndoRoot], rec: &Record) -> Result<UndoOutcome, String> {
    let path = unescape_path(&rec.path).map_err(|e| format!("bad path: {e}"))?;
    let root = roots
        .iter()
        .filter(|r| path.starts_with(&r.path))
        .max_by_key(|r| r.path.as_os_str().len())
        .ok_or("not under any root of the journal: refusing")?;
    let rel = path.strip_prefix(&root.path).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(CString::new(n.as_bytes()).map_err(|e| e.to_string())?),
            _ => return Err("path has `.`, `..` or a root inside: refusing".into()),
        }
    }
    let name = names.pop().unwrap_or_else(|| c".".to_owned());
    // Walk down from the root, never following a symbolic link.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut dir: Option<OwnedFd> = None;
    for n in &names {
        let next = match &dir {
            Some(d) => rustix::fs::openat(d, n, flags, Mode::empty()),
            None => rustix::fs::openat(&root.fd, n, flags, Mode::empty()),
        };
        match next {
            Ok(fd) => dir = Some(fd),
            Err(Errno::NOENT) => return Ok(UndoOutcome::Skipped("a parent directory is gone".into())),
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Ok(UndoOutcome::Skipped("a parent directory was replaced by a link or a file".into()));
            }
            Err(e) => return Err(format!("cannot open parent: {}", std::io::Error::from(e))),
        }
    }
    let dir_fd = dir.as_ref().unwrap_or(&root.fd);
    let now = match rustix::fs::statx(dir_fd, &name, AtFlags::SYMLINK_NOFOLLOW, FIX_MASK) {
        Ok(s) => s,
        Err(Errno::NOENT) => return Ok(UndoOutcome::Skipped("gone".into())),
        Err(e) => return Err(format!("cannot stat: {}", std::io::Error::from(e))),
    };
    let dev = dev_of(&now);
    let same_dev = dev == rec.dev || (rec.dev == root.old_dev && dev == root.dev);
    if now.stx_ino != rec.ino || !same_dev || (rec.btime.is_some() && btime_of(&now) != rec.btime) {
        return Ok(UndoOutcome::Skipped(format!(
            "another file has this path now (inode {} on device {dev} born {}, the fix changed inode {} on device {} born {})",
            now.stx_ino,
            btime_of(&now).unwrap_or_else(|| "?".into()),
            rec.ino,
            rec.dev,
            rec.btime.as_deref().unwrap_or("?")
        )));
    }
    let id = FileId { dev, ino: now.stx_ino };
    if let Some(new_perm) = rec.new_mode {
        return undo_restore(dir_fd, &name, rec, id, &now, new_perm);
    }
    let cur = (now.stx_uid, now.stx_gid);
    if cur == (rec.uid, rec.gid) {
        return Ok(UndoOutcome::Already);
    }
    if cur != (rec.new_uid, rec.new_gid) {
        return Ok(UndoOutcome::Skipped(format!(
            "owner is {}:{} now, not the {}:{} the fix set: someone changed it since",
            cur.0, cur.1, rec.new_uid, rec.new_gid
        )));
    }
    rustix::fs::chownat(
        dir_fd,
        &name,
        Some(Uid::from_raw(rec.uid)),
        Some(Gid::from_raw(rec.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| format!("chown failed: {}", std::io::Error::from(e)))?;
    restore_special_bits(dir_fd, &name, rec, id, u32::from(now.stx_mode))?;
    Ok(UndoOutcome::Restored)
}

/// Undoes one record of a baseline restore: owner and permission bits back to the recorded
/// ones, when the entry still has what the restore set (else it is left alone).
fn undo_restore(
    dir: &OwnedFd,
    name: &CString,
    rec: &Record,
    id: FileId,
    now: &rustix::fs::Statx,
    new_perm: u32,
) -> Result<UndoOutcome, String> {
    let symlink = u32::from(now.stx_mode) & 0o170000 == 0o120000;
    let perm = |m: u32| if symlink { 0o777 } else { m & 0o7777 };
    let cur = (now.stx_uid, now.stx_gid);
    let cur_perm = perm(u32::from(now.stx_mode));
    if cur == (rec.uid, rec.gid) && cur_perm == perm(rec.mode) {
        return Ok(UndoOutcome::Already);
    }
    if cur != (rec.new_uid, rec.new_gid) || cur_perm != perm(new_perm) {
        return Ok(UndoOutcome::Skipped(format!(
            "owner and mode are {}:{} {:04o} now, not the {}:{} {:04o} the restore set: someone changed them since",
            cur.0,
            cur.1,
            cur_perm,
            rec.new_uid,
            rec.new_gid,
            perm(new_perm)
        )));
    }
    let fd = entry::open(dir.as_fd(), name, id).map_err(|e| format!("cannot reopen: {e}"))?;
    if cur != (rec.uid, rec.gid) {
        entry::chown(&fd, rec.uid, rec.gid).map_err(|e| format!("chown failed: {}", std::io::Error::from(e)))?;
    }
    if !symlink {
        entry::chmod(&fd, perm(rec.mode))
            .map_err(|e| format!("owner restored, but not its mode: {}", std::io::Error::from(e)))?;
    }
    if let Some(caps) = &rec.caps {
        let value = unhex(caps).ok_or("bad caps in the journal")?;
        entry::set_caps(&fd, &value).map_err(|e| format!("owner restored, but not its file capabilities: {e}"))?;
    }
    Ok(UndoOutcome::Restored)
}

/// `chown` clears the set-user-ID and set-group-ID bits and the file capabilities of a
/// regular file; put them back.
fn restore_special_bits(dir: &OwnedFd, name: &CString, rec: &Record, id: FileId, mode_now: u32) -> Result<(), String> {
    const SPECIAL: u32 = 0o6000;
    let is_regular = rec.mode & 0o170000 == 0o100000;
    let mode_lost = rec.mode & SPECIAL != 0 && mode_now & 0o7777 != rec.mode & 0o7777;
    if !is_regular || (!mode_lost && rec.caps.is_none()) {
        return Ok(());
    }
    // Open the file itself (never a link) and check it is the same inode first.
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| format!("cannot reopen: {e}"))?;
    let stx = rustix::fs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO).map_err(|e| e.to_string())?;
    if stx.stx_ino != id.ino || dev_of(&stx) != id.dev {
        return Err("replaced while restoring its mode".into());
    }
    if let Some(caps) = &rec.caps {
        let value = unhex(caps).ok_or("bad caps in the journal")?;
        rustix::fs::fsetxattr(&fd, CAPS_XATTR, &value, rustix::fs::XattrFlags::empty())
            .map_err(|e| format!("owner restored, but not its file capabilities: {e}"))?;
    }
    if mode_lost {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(rec.mode & 0o7777))
            .map_err(|e| format!("owner restored, but not its set-user/group-ID bits: {e}"))?;
    }
    Ok(())
}
