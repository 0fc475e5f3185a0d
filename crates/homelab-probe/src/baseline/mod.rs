//! Ownership baselines: the owners and modes of every entry under some roots, taken while a
//! host is good ([`take`]), compared with the tree as it is now ([`check`]), and put back
//! ([`restore()`]) with a journal that `drift undo` reverses.
//!
//! Where `drift` asks "is everything under this root owned by one uid:gid?", a baseline
//! answers for trees of many owners (`appdata/` of a dozen containers, `/var/lib`): each entry
//! must have the owner and mode it had.
//!
//! - The file format is `model::baseline` (records, order, offsets in errors) inside one zstd
//!   frame ([`mod@file`]). Taking writes while walking; checking reads while walking; neither holds
//!   the tree or the baseline whole: both sides come in the same order (directories depth
//!   first, names sorted bytewise; the walk is `scan::ordered`) and are merged directory by
//!   directory.
//! - Roots are validated like drift's (`/` refused; a restore also refuses roots given through
//!   a symbolic link or with `..`, and asks the system-directory refusal of every root and every
//!   directory it enters).
//! - A baseline file that is truncated, corrupt or of another version is an error naming the
//!   byte offset (compressed or decompressed, it says which) and nothing is reported from it;
//!   a restore reads the whole file and checks it before it changes anything.

pub mod compare;
pub mod file;
pub mod restore;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use compare::{BaselineReport, ChangeGroup, CheckOptions, check};
pub use restore::{RestoreOptions, RestoreReport, restore};

use crate::drift::{DriftError, ErrorSample, prepare_roots};
use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::baseline::{EntryStat, FormatError, Header, IdNames, Parser, Totals};
use crate::model::report::now_rfc3339;
use crate::model::snapshot::RecordedBaseline;
use crate::scan::escape::{escape, escape_path};
use crate::scan::ordered::{self, Event, Unread, WalkOptions, WalkStats};
use crate::scan::{Exclude, FileId, Progress};

/// Error samples kept in a report.
const ERROR_SAMPLES: usize = 20;

/// Why a baseline could not be taken, read, checked or restored (the CLI's exit code 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// A root cannot be used, or the journal failed.
    #[error(transparent)]
    Drift(#[from] DriftError),
    /// The baseline file could not be opened or read.
    #[error("{}: {message}", escape_path(path))]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The baseline file is not a valid baseline: truncated, corrupt, another version.
    #[error("{}: {message}; nothing was compared or changed", escape_path(path))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the byte offset.
        message: String,
    },
    /// The output could not be written.
    #[error("{}: {message}", escape_path(path))]
    Output {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Bad options (a `--map` that names no root of the baseline, ...).
    #[error("{0}")]
    Usage(String),
}

/// A message for a format error of `path`, naming the offset and whether it is compressed.
pub(crate) fn invalid(path: &Path, e: FormatError) -> BaselineError {
    let message = match &e {
        FormatError::Read { offset, source } => match file::StreamError::of(source) {
            Some(s) => format!("{s} (decompressed byte {offset})"),
            None => return BaselineError::File { path: path.to_path_buf(), message: format!("read error: {source}") },
        },
        other => other.to_string(),
    };
    BaselineError::Invalid { path: path.to_path_buf(), message }
}

/// Opens the baseline `path` for streaming: the header is read and checked.
pub(crate) fn open(path: &Path) -> Result<Parser<file::Reader<BufReader<File>>>, BaselineError> {
    let f = File::open(path).map_err(|e| BaselineError::File {
        path: path.to_path_buf(),
        message: format!("cannot open the baseline: {e}"),
    })?;
    let reader = file::Reader::new(BufReader::with_capacity(1 << 16, f))
        .map_err(|e| BaselineError::File { path: path.to_path_buf(), message: e.to_string() })?;
    Parser::new(reader).map_err(|e| invalid(path, e))
}

/// Reads a whole baseline from `bytes` (compressed) and checks every record; returns the
/// header and counts. What `baseline show` and a restore run before anything else.
pub fn validate(path: &Path, bytes: &[u8]) -> Result<(Header, Totals), BaselineError> {
    let reader = file::Reader::new(bytes)
        .map_err(|e| BaselineError::File { path: path.to_path_buf(), message: e.to_string() })?;
    let mut p = Parser::new(reader).map_err(|e| invalid(path, e))?;
    loop {
        match p.next_record().map_err(|e| invalid(path, e))? {
            Some(crate::model::baseline::Record::End(t)) => return Ok((p.header().clone(), t)),
            Some(_) => {}
            None => return Err(BaselineError::Invalid { path: path.to_path_buf(), message: "no end record".into() }),
        }
    }
}

/// Reads the whole baseline `path`, checks it, then calls `each` with every entry in walk
/// order: its path (escaped) and stat. Nothing is shown from a file that is not whole.
pub fn show(path: &Path, mut each: impl FnMut(&str, EntryStat)) -> Result<(Header, Totals), BaselineError> {
    let bytes = read_whole(path)?;
    let (header, totals) = validate(path, &bytes)?;
    let reader = file::Reader::new(&bytes[..])
        .map_err(|e| BaselineError::File { path: path.to_path_buf(), message: e.to_string() })?;
    let mut p = Parser::new(reader).map_err(|e| invalid(path, e))?;
    let roots: Vec<PathBuf> = header
        .roots
        .iter()
        .map(|r| crate::scan::escape::unescape_path(r).unwrap_or_else(|_| PathBuf::from(r)))
        .collect();
    let mut root = 0usize;
    while let Some(rec) = p.next_record().map_err(|e| invalid(path, e))? {
        match rec {
            crate::model::baseline::Record::Root { index, stat } => {
                root = index;
                each(&entry_path(&roots[index], &[], b"."), stat);
            }
            crate::model::baseline::Record::Dir { path: dir, block } => {
                for (name, stat) in block.iter() {
                    each(&entry_path(&roots[root], dir, name), stat);
                }
            }
            _ => {}
        }
    }
    Ok((header, totals))
}

/// Names of ids from a host's identity database, for the baseline's `u`/`g` records.
pub(crate) struct HostNames<'a>(pub &'a IdentityDb);

impl IdNames for HostNames<'_> {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.0.user_by_uid(uid).map(|u| u.name)
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        self.0.group_by_gid(gid).map(|g| g.name)
    }
}

/// What to record.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TakeOptions {
    /// Directories to record (`/` is refused; nested roots are recorded once).
    pub roots: Vec<PathBuf>,
    /// Glob patterns of entries to leave out (as drift's `--exclude`); recorded in the file,
    /// so a check leaves out the same.
    pub exclude: Vec<String>,
    /// Descend into other filesystems under a root.
    pub cross_mounts: bool,
    /// Worker threads (0: two per CPU).
    pub threads: usize,
    /// Replace an existing output file.
    pub force: bool,
    /// Live counters for a progress display.
    pub progress: Option<Arc<Progress>>,
}

impl TakeOptions {
    /// Options for `roots` with the defaults.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        TakeOptions { roots, exclude: Vec::new(), cross_mounts: false, threads: 0, force: false, progress: None }
    }
}

/// What [`take`] recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TakeReport {
    /// The baseline file (escaped).
    pub file: String,
    /// The roots recorded (escaped, as in the file).
    pub roots: Vec<String>,
    /// Counts of the walk.
    pub stats: WalkStats,
    /// What the file holds.
    pub recorded: Totals,
    /// Distinct owners (uid:gid pairs) seen.
    pub owners: usize,
    /// Size of the file.
    pub bytes: u64,
    /// Size of the decompressed stream.
    pub raw_bytes: u64,
    /// Directories that could not be read and entries that could not be examined.
    pub errors: Vec<ErrorSample>,
    /// Wall time.
    pub elapsed_seconds: f64,
}

/// Records every entry under `opts.roots` of this machine into `output` (written to a
/// temporary file beside it and renamed when complete; an existing file is replaced only with
/// [`TakeOptions::force`]).
pub fn take(opts: &TakeOptions, output: &Path) -> Result<TakeReport, BaselineError> {
    let roots = prepare_roots(&opts.roots, false, &crate::drift::guard::SystemDirs::load())?;
    take_at(&Host::live(), &roots, &roots, opts, output)
}

/// [`take`] for `host`: `real` are the directories walked, `recorded` the paths written into
/// the file (the same on the live host; in a sysroot, the host's own paths).
pub(crate) fn take_at(
    host: &Host,
    real: &[PathBuf],
    recorded: &[PathBuf],
    opts: &TakeOptions,
    output: &Path,
) -> Result<TakeReport, BaselineError> {
    let start = Instant::now();
    let out_err = |message: String| BaselineError::Output { path: output.to_path_buf(), message };
    if !opts.force && output.symlink_metadata().is_ok() {
        return Err(out_err("exists: not replacing it without --force".into()));
    }
    let exclude = Exclude::new(&opts.exclude).map_err(DriftError::Exclude)?;
    let dir = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = output.file_name().ok_or_else(|| out_err("not a file name".into()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| out_err(format!("cannot create {}: {e}", escape_path(&tmp))))?;
    let result = (|| {
        let meta = file.metadata().map_err(|e| out_err(e.to_string()))?;
        let skip = {
            use std::os::unix::fs::MetadataExt;
            FileId { dev: meta.dev(), ino: meta.ino() }
        };
        let header = Header {
            cross_mounts: opts.cross_mounts,
            exclude: opts.exclude.clone(),
            ..Header::new(
                format!("homelab-verify {}", env!("CARGO_PKG_VERSION")),
                host.info().hostname,
                now_rfc3339(),
                recorded.iter().map(|r| escape_path(r)).collect(),
            )
        };
        let z = file::writer(BufWriter::with_capacity(1 << 16, &file)).map_err(|e| out_err(e.to_string()))?;
        let mut enc = crate::model::baseline::Encoder::new(z, &header).map_err(|e| out_err(e.to_string()))?;
        let ids = IdentityDb::load(host);
        let mut names = HostNames(&ids);
        let wopts = WalkOptions {
            cross_mounts: opts.cross_mounts,
            exclude,
            threads: opts.threads,
            skip: Some(skip),
            progress: opts.progress.clone(),
            ..WalkOptions::default()
        };
        let mut failed: Option<String> = None;
        let mut errors: Vec<ErrorSample> = Vec::new();
        let mut owners = std::collections::HashSet::new();
        let mut note = |e: ErrorSample| {
            if errors.len() < ERROR_SAMPLES {
                errors.push(e);
            }
        };
        let stats = ordered::walk(real, &wopts, None, |ev| {
            let r = match ev {
                Event::Root { index, stat, .. } => {
                    owners.insert((stat.uid, stat.gid));
                    let s = EntryStat::from_mode(stat.mode, stat.uid, stat.gid).unwrap_or(EntryStat {
                        kind: crate::model::fs::FileKind::Dir,
                        uid: stat.uid,
                        gid: stat.gid,
                        mode: 0,
                    });
                    enc.root(index, s, &mut names)
                }
                Event::Dir(d) => {
                    for p in &d.problems {
                        note(ErrorSample {
                            path: escape_path(&p.path),
                            op: p.op,
                            error: std::io::Error::from(p.errno).to_string(),
                        });
                    }
                    let comps = d.components();
                    match &d.unread {
                        Some(Unread::Error(op, errno)) => {
                            note(ErrorSample {
                                path: escape_path(&d.path()),
                                op: *op,
                                error: std::io::Error::from(*errno).to_string(),
                            });
                            enc.unreadable(&comps, errno.raw_os_error())
                        }
                        Some(Unread::Refused(why)) => {
                            note(ErrorSample {
                                path: escape_path(&d.path()),
                                op: crate::scan::Op::Open,
                                error: why.clone(),
                            });
                            enc.unreadable(&comps, libc_eperm())
                        }
                        None => {
                            let entries = d.iter().filter_map(|(n, l)| {
                                EntryStat::from_mode(l.mode, l.uid, l.gid).map(|s| (n.to_bytes(), s))
                            });
                            for (_, l) in d.iter() {
                                owners.insert((l.uid, l.gid));
                            }
                            enc.dir(&comps, entries, &mut names)
                        }
                    }
                }
                Event::RootEnd { .. } => enc.end_root(),
            };
            match r {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e.to_string());
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(|e| DriftError::Root {
            path: e.path.clone(),
            message: format!("cannot use as a root: {}", e.source),
        })?;
        if let Some(m) = failed {
            return Err(out_err(m));
        }
        let raw_bytes = enc.written();
        let (z, recorded) = enc.finish().map_err(|e| out_err(e.to_string()))?;
        let mut buffered = z.finish().map_err(|e| out_err(e.to_string()))?;
        buffered.flush().map_err(|e| out_err(e.to_string()))?;
        drop(buffered);
        file.sync_all().map_err(|e| out_err(e.to_string()))?;
        let bytes = file.metadata().map_err(|e| out_err(e.to_string()))?.len();
        Ok((stats, recorded, raw_bytes, bytes, owners.len(), errors))
    })();
    let (stats, recorded_totals, raw_bytes, bytes, owners, errors) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let renamed = if opts.force {
        std::fs::rename(&tmp, output).map_err(|e| e.to_string())
    } else {
        rename_noreplace(&tmp, output)
    };
    if let Err(m) = renamed {
        let _ = std::fs::remove_file(&tmp);
        return Err(out_err(m));
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(TakeReport {
        file: escape_path(output),
        roots: recorded.iter().map(|r| escape_path(r)).collect(),
        stats,
        recorded: recorded_totals,
        owners,
        bytes,
        raw_bytes,
        errors,
        elapsed_seconds: start.elapsed().as_secs_f64(),
    })
}

/// What `capture --baseline` records in the snapshot about the baseline `report` says [`take`]
/// wrote to `output`: the file (absolute), its roots and counts, and the SHA-256 of the file
/// as it is on disk, which the new host compares with `sha256sum` (MIGRATION.md says how).
pub fn recorded(report: &TakeReport, output: &Path) -> Result<RecordedBaseline, BaselineError> {
    use sha2::Digest as _;
    let file_err = |message: String| BaselineError::File { path: output.to_path_buf(), message };
    let absolute = std::path::absolute(output).map_err(|e| file_err(e.to_string()))?;
    let mut f = File::open(output).map_err(|e| file_err(format!("cannot open the baseline: {e}")))?;
    let mut hash = sha2::Sha256::new();
    let bytes = std::io::copy(&mut f, &mut hash).map_err(|e| file_err(format!("cannot read the baseline: {e}")))?;
    Ok(RecordedBaseline {
        file: escape_path(&absolute),
        roots: report.roots.clone(),
        entries: report.recorded.entries,
        bytes,
        sha256: format!("{:x}", hash.finalize()),
        complete: report.stats.unreadable == 0 && report.stats.problems == 0,
    })
}

/// Moves `tmp` to `output` unless `output` exists. `RENAME_NOREPLACE` where the filesystem
/// has it; 9p, NFS and CIFS answer `EINVAL`, and there a hard link (which fails on an existing
/// name too) stands in, then a plain rename after one more look.
fn rename_noreplace(tmp: &Path, output: &Path) -> Result<(), String> {
    use rustix::io::Errno;
    let exists = || "exists: not replacing it without --force".to_owned();
    match rustix::fs::renameat_with(rustix::fs::CWD, tmp, rustix::fs::CWD, output, rustix::fs::RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(()),
        Err(Errno::EXIST) => return Err(exists()),
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
        Err(e) => return Err(e.to_string()),
    }
    match std::fs::hard_link(tmp, output) {
        Ok(()) => std::fs::remove_file(tmp).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists()),
        Err(_) if output.symlink_metadata().is_ok() => Err(exists()),
        Err(_) => std::fs::rename(tmp, output).map_err(|e| e.to_string()),
    }
}

fn libc_eperm() -> i32 {
    rustix::io::Errno::PERM.raw_os_error()
}

/// The roots of a baseline's header with `--map OLD=NEW` applied (the longest OLD that is
/// the root or a parent of it wins). Every map must apply to some root.
pub(crate) fn mapped_roots(
    header: &Header,
    file: &Path,
    map: &[(PathBuf, PathBuf)],
) -> Result<Vec<PathBuf>, BaselineError> {
    let mut used = vec![false; map.len()];
    let mut out = Vec::new();
    for r in &header.roots {
        let root = crate::scan::escape::unescape_path(r).map_err(|e| BaselineError::Invalid {
            path: file.to_path_buf(),
            message: format!("header: root {r:?}: {e}"),
        })?;
        let best = map
            .iter()
            .enumerate()
            .filter(|(_, (old, _))| root.starts_with(old))
            .max_by_key(|(_, (old, _))| old.as_os_str().len());
        out.push(match best {
            Some((i, (old, new))) => {
                used[i] = true;
                let rest = root.strip_prefix(old).unwrap_or(Path::new(""));
                if rest.as_os_str().is_empty() { new.clone() } else { new.join(rest) }
            }
            None => root,
        });
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(BaselineError::Usage(format!(
            "--map {}={}: no root of the baseline is {} or below it (its roots: {})",
            escape_path(&map[i].0),
            escape_path(&map[i].1),
            escape_path(&map[i].0),
            header.roots.join(", ")
        )));
    }
    Ok(out)
}

/// The path of entry `name` of the directory `dir` (components) under `root`, escaped; `.`
/// is the root itself.
pub(crate) fn entry_path(root: &Path, dir: &[Vec<u8>], name: &[u8]) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut p = root.as_os_str().as_bytes().to_vec();
    for c in dir.iter().map(Vec::as_slice).chain((name != b".").then_some(name)) {
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(c);
    }
    escape(&p)
}

/// Reads `path` whole (a restore checks the whole file before it changes anything, and then
/// reads the same bytes again, not a file that could have changed in between).
pub(crate) fn read_whole(path: &Path) -> Result<Vec<u8>, BaselineError> {
    let mut f = File::open(path).map_err(|e| BaselineError::File {
        path: path.to_path_buf(),
        message: format!("cannot open the baseline: {e}"),
    })?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| BaselineError::File { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_capture_records_is_the_file_as_sha256sum_sees_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("appdata");
        std::fs::create_dir_all(root.join("db")).unwrap();
        std::fs::write(root.join("db/PG_VERSION"), "16\n").unwrap();
        let file = t.path().join("owners.baseline");
        let report = take(&TakeOptions::new(vec![root.clone()]), &file).unwrap();
        let r = recorded(&report, &file).unwrap();
        // The oracle: coreutils' sha256sum of the same file.
        let out = std::process::Command::new("sha256sum").arg(&file).output().unwrap();
        let sum = String::from_utf8(out.stdout).unwrap();
        assert_eq!(Some(r.sha256.as_str()), sum.split_whitespace().next(), "{sum}");
        assert_eq!(r.file, escape_path(&file));
        assert_eq!(r.roots, vec![escape_path(&root)]);
        assert_eq!((r.entries, r.complete), (3, true));
        assert_eq!(r.bytes, std::fs::metadata(&file).unwrap().len());
    }
}
