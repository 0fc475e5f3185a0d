//! The ownership baseline that `baseline take` writes and `baseline check`/`restore` read: the
//! decompressed stream of `model::baseline` and the zstd file around it
//! (`baseline::file`). Only the reader and the writer are exercised: `restore` changes owners,
//! so it is never given fuzzed input.
//!
//! The first byte picks the property:
//! - even: the rest is read as a baseline; bit 1 of the byte: as a file (zstd), else as the
//!   decompressed stream; bits 2-7: how many bytes each read hands on (1 to 64), so that records
//!   cross the reader's refills anywhere. An error names an offset within what was read (the
//!   compressed offset too, for a file); the result does not depend on how the reads were cut,
//!   and the file reader of `baseline show` agrees. A baseline that reads whole is written
//!   again by the encoder and reads back as the same records, and cut short it is an error.
//! - odd: the rest builds a header and roots of directory blocks in walk order (through
//!   `arbitrary`), written as `baseline take` writes them; the stream and the zstd file read
//!   back as the same records with the same names of users and groups, and either, cut at any
//!   byte, is an error (never a shorter baseline) naming an offset within what is left.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::Path;

use arbitrary::{Result, Unstructured};
use homelab_probe::baseline::file::{self, StreamError};
use homelab_probe::baseline::{self as top, BaselineError};
use homelab_probe::model::baseline::{
    BASELINE_VERSION, EncodeError, Encoder, EntryStat, FormatError, Header, IdNames, MAGIC, Parser, Record, Totals,
    walk_order,
};
use homelab_probe::model::fs::FileKind;

use crate::arb;

/// The file name the whole-file reader is given (errors name it).
const FILE: &str = "/var/lib/homelab-probe/media.baseline";

/// The baseline target.
pub fn baseline(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let piece = usize::from(mode >> 2) + 1;
        if mode & 2 == 0 { read_stream(rest, piece) } else { read_file(rest, piece) }
    } else {
        let _ = round_trip(&mut Unstructured::new(rest));
    }
}

/// One record as read, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    Root(usize, EntryStat),
    Dir(Vec<Vec<u8>>, Vec<(Vec<u8>, EntryStat)>),
    Unreadable(Vec<Vec<u8>>, i32),
    EndRoot(usize),
    End(Totals),
}

/// A whole baseline as read: the header, the records, and the names of users and groups the
/// file gave (the last name given for an id, as the reader keeps it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Baseline {
    header: Header,
    recs: Vec<Rec>,
    users: BTreeMap<u32, String>,
    groups: BTreeMap<u32, String>,
}

impl Baseline {
    /// The uids and gids the records use.
    fn ids(&self) -> (BTreeSet<u32>, BTreeSet<u32>) {
        let stats = self.recs.iter().flat_map(|r| match r {
            Rec::Root(_, s) => vec![*s],
            Rec::Dir(_, entries) => entries.iter().map(|(_, s)| *s).collect(),
            _ => Vec::new(),
        });
        let (mut uids, mut gids) = (BTreeSet::new(), BTreeSet::new());
        for s in stats {
            uids.insert(s.uid);
            gids.insert(s.gid);
        }
        (uids, gids)
    }
}

/// Reads a whole baseline stream.
fn read(r: impl Read) -> std::result::Result<Baseline, FormatError> {
    let mut p = Parser::new(r)?;
    let mut recs = Vec::new();
    while let Some(r) = p.next_record()? {
        recs.push(match r {
            Record::Root { index, stat } => Rec::Root(index, stat),
            Record::Dir { path, block } => {
                Rec::Dir(path.to_vec(), block.iter().map(|(n, s)| (n.to_vec(), s)).collect())
            }
            Record::Unreadable { path, errno } => Rec::Unreadable(path.to_vec(), errno),
            Record::EndRoot { index } => Rec::EndRoot(index),
            Record::End(t) => Rec::End(t),
        });
    }
    assert!(matches!(recs.last(), Some(Rec::End(_))), "a baseline read whole without its end record");
    let (mut users, mut groups) = (BTreeMap::new(), BTreeMap::new());
    for (user, id, name) in p.take_new_names() {
        let map = if user { &mut users } else { &mut groups };
        map.insert(id, name);
    }
    Ok(Baseline { header: p.header().clone(), recs, users, groups })
}

/// Hands on at most `piece` bytes a read.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.piece).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Counts the bytes read through it.
struct Counting<'c, R> {
    inner: R,
    count: &'c Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Checks a format error: its offset is within the `read` bytes of the stream (a version error:
/// the stream held the magic and a version); a read error carries the zstd layer's error, at a
/// compressed offset within the `compressed` bytes (none when reading the stream directly).
#[track_caller]
fn check_error(e: &FormatError, read: u64, compressed: Option<usize>) {
    match e {
        FormatError::Invalid { offset, message } => {
            assert!(*offset <= read, "{e}: offset {offset}, {read} bytes were read");
            assert!(!message.is_empty(), "{e}: empty message");
        }
        FormatError::Version { found } => {
            assert_ne!(*found, BASELINE_VERSION, "{e}");
            assert!(read > MAGIC.len() as u64, "{e}: after {read} bytes");
        }
        FormatError::Read { offset, source } => {
            let Some(len) = compressed else { panic!("{e}: a read error from a slice") };
            assert!(*offset <= read, "{e}: offset {offset}, {read} bytes were read");
            let Some(s) = StreamError::of(source) else { panic!("{e}: not an error of the zstd layer") };
            let at = match s {
                StreamError::NotZstd(_) => 0,
                StreamError::Truncated { offset }
                | StreamError::Corrupt { offset, .. }
                | StreamError::Trailing { offset }
                | StreamError::Read { offset, .. } => *offset,
            };
            assert!(at <= len as u64, "{e}: compressed offset {at}, the file has {len} bytes");
        }
        other => panic!("a format error of an unknown kind: {other}"),
    }
}

/// The bytes a cut at `cut` leaves, read: an error naming an offset within them.
#[track_caller]
fn assert_cut_refused(bytes: &[u8], cut: usize) {
    match read(&bytes[..cut]) {
        Ok(_) => panic!("a baseline cut at byte {cut} of {} reads whole", bytes.len()),
        Err(e) => check_error(&e, cut as u64, None),
    }
}

/// Cut points for a baseline of `len` bytes: the last byte, and a spread of others.
fn cuts(len: usize) -> impl Iterator<Item = usize> {
    (0..8).map(move |k| len * k / 8).chain(len.checked_sub(1)).filter(move |&c| c < len)
}

/// The decompressed stream, read in pieces.
fn read_stream(bytes: &[u8], piece: usize) {
    let got = read(Pieces { data: bytes, piece });
    let whole = read(bytes);
    match (&got, &whole) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "read in pieces of {piece} bytes"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "read in pieces of {piece} bytes"),
        _ => panic!("read in pieces of {piece} bytes: {:?}, read whole: {:?}", got.err(), whole.err()),
    }
    match got {
        Ok(b) => {
            rewrite(&b);
            for c in cuts(bytes.len()) {
                assert_cut_refused(bytes, c);
            }
        }
        Err(e) => check_error(&e, bytes.len() as u64, None),
    }
}

/// A baseline file (zstd), read in pieces; `baseline show`'s reader agrees.
fn read_file(bytes: &[u8], piece: usize) {
    let got = read_zstd(bytes, piece);
    let path = Path::new(FILE);
    match (&got, top::validate(path, bytes)) {
        (Ok(b), Ok((h, t))) => {
            assert_eq!(h, b.header);
            assert_eq!(Some(&Rec::End(t)), b.recs.last());
        }
        (Err(e), Err(BaselineError::Invalid { path: p, message })) => {
            assert_eq!(p, path);
            // A version error has no offset: the version is always the byte after the magic.
            let version = matches!(e, FormatError::Version { .. });
            assert!(message.contains(if version { "format version" } else { " byte " }), "{message}: names no byte");
        }
        (got, top) => panic!("read in pieces: {got:?}; baseline show's reader: {top:?}"),
    }
    if let Ok(b) = got {
        rewrite(&b);
        for c in cuts(bytes.len()) {
            assert!(read_zstd(&bytes[..c], piece).is_err(), "a baseline file cut at byte {c} reads whole");
        }
    }
}

/// A baseline file read through the zstd layer in pieces of `piece` bytes; an error is checked
/// as [`check_error`] checks it.
fn read_zstd(bytes: &[u8], piece: usize) -> std::result::Result<Baseline, FormatError> {
    let delivered = Cell::new(0);
    let z = file::Reader::new(Pieces { data: bytes, piece }).expect("a zstd decoder");
    let got = read(Counting { inner: z, count: &delivered });
    if let Err(e) = &got {
        check_error(e, delivered.get(), Some(bytes.len()));
    }
    got
}

/// Names of users and groups from maps.
struct Names<'a> {
    users: &'a BTreeMap<u32, String>,
    groups: &'a BTreeMap<u32, String>,
}

impl IdNames for Names<'_> {
    fn user(&mut self, uid: u32) -> Option<String> {
        self.users.get(&uid).cloned()
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups.get(&gid).cloned()
    }
}

/// Writes `b`'s header and records with the encoder, as `baseline take` does: the stream and
/// the counts of the end record.
fn write(b: &Baseline) -> std::result::Result<(Vec<u8>, Totals), EncodeError> {
    let mut names = Names { users: &b.users, groups: &b.groups };
    let mut e = Encoder::new(Vec::new(), &b.header)?;
    for r in &b.recs {
        match r {
            Rec::Root(i, s) => e.root(*i, *s, &mut names)?,
            Rec::Dir(path, entries) => {
                let p: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                e.dir(&p, entries.iter().map(|(n, s)| (n.as_slice(), *s)), &mut names)?;
            }
            Rec::Unreadable(path, errno) => {
                let p: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
                e.unreadable(&p, *errno)?;
            }
            Rec::EndRoot(_) => e.end_root()?,
            Rec::End(_) => break,
        }
    }
    e.finish()
}

/// Checks that what was read back has `want`'s header and records, and the names `want`
/// gives for every id it uses (and no other name).
#[track_caller]
fn assert_same(got: &Baseline, want: &Baseline) {
    assert_eq!(got.header, want.header, "the header read back");
    assert_eq!(got.recs, want.recs, "the records read back");
    let (uids, gids) = want.ids();
    for uid in uids {
        assert_eq!(got.users.get(&uid), want.users.get(&uid), "the name of uid {uid}");
    }
    for gid in gids {
        assert_eq!(got.groups.get(&gid), want.groups.get(&gid), "the name of gid {gid}");
    }
    for (id, n) in &got.users {
        assert_eq!(Some(n), want.users.get(id), "a name for uid {id} that was not given");
    }
    for (id, n) in &got.groups {
        assert_eq!(Some(n), want.groups.get(id), "a name for gid {id} that was not given");
    }
}

/// A baseline the reader accepted, written again by the encoder: the encoder takes it, and it
/// reads back as the same records (the defaults of each block may differ: the encoder picks
/// the most common owner and modes).
fn rewrite(b: &Baseline) {
    let (bytes, totals) = write(b).unwrap_or_else(|e| panic!("a baseline that reads whole cannot be written: {e}"));
    assert_eq!(Some(&Rec::End(totals)), b.recs.last(), "the encoder's counts");
    let back = read(&bytes[..]).unwrap_or_else(|e| panic!("a baseline written again does not read back: {e}"));
    assert_same(&back, b);
}

/// Names that matter to a walk: sorted neighbours, bytes that are not UTF-8, a newline.
const ENTRY_NAMES: &[&[u8]] = &[
    b"appdata",
    b"config",
    b"config.xml",
    b"Season 01",
    b"Season 02",
    b"caf\xc3\xa9.mkv",
    b"caf\xe9.mkv",
    b"new\nline",
    b".hidden",
    b"a",
    b"a-c",
    b"ab",
    b"\xff",
    b" ",
];

/// A name of a directory entry: not empty, not `.` or `..`, no `/` or NUL.
fn entry_name(u: &mut Unstructured) -> Result<Vec<u8>> {
    if u.ratio(3, 4)? {
        return Ok(u.choose(ENTRY_NAMES)?.to_vec());
    }
    let n = u.int_in_range(1..=12)?;
    let mut name: Vec<u8> = (0..n).map(|_| u.arbitrary::<u8>()).collect::<Result<_>>()?;
    for b in &mut name {
        if *b == b'/' || *b == 0 {
            *b = b'_';
        }
    }
    if name == b"." || name == b".." {
        name.push(b'x');
    }
    Ok(name)
}

const KINDS: &[FileKind] = &[
    FileKind::File,
    FileKind::File,
    FileKind::File,
    FileKind::Dir,
    FileKind::Dir,
    FileKind::Symlink,
    FileKind::Fifo,
    FileKind::Socket,
    FileKind::Char,
    FileKind::Block,
];

/// A stat as the walk gives it: modes within `0o7777`, `0o777` for a symbolic link.
fn stat(u: &mut Unstructured, kind: FileKind) -> Result<EntryStat> {
    const MODES: &[u32] = &[0o644, 0o755, 0o600, 0o700, 0o2775, 0o4755, 0o1777, 0o664, 0];
    let mode = if u.ratio(3, 4)? { *u.choose(MODES)? } else { u.int_in_range(0..=0o7777)? };
    Ok(EntryStat {
        kind,
        uid: arb::id(u)?,
        gid: arb::id(u)?,
        mode: if kind == FileKind::Symlink { 0o777 } else { mode },
    })
}

/// A user or group name as a host has them: not empty, at most 256 bytes.
fn id_name(u: &mut Unstructured) -> Result<Option<String>> {
    const NAMES: &[&str] =
        &["root", "alice", "render", "video", "media", "docker", "nogroup", "systemd-journal-gateway"];
    Ok(match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(arb::text(u)?).filter(|n| !n.is_empty() && n.len() <= 256),
        _ => Some((*u.choose(NAMES)?).to_owned()),
    })
}

fn round_trip(u: &mut Unstructured) -> Result<()> {
    let roots: Vec<String> = (0..u.int_in_range(0..=3)?).map(|_| arb::escaped_path(u)).collect::<Result<_>>()?;
    let host = if u.arbitrary()? { Some(arb::text(u)?) } else { None };
    let mut header = Header::new(arb::text(u)?, host, arb::text(u)?, roots);
    header.cross_mounts = u.arbitrary()?;
    header.exclude = (0..u.int_in_range(0..=2)?).map(|_| arb::text(u)).collect::<Result<_>>()?;

    let mut recs = Vec::new();
    let mut totals = Totals::default();
    for index in 0..header.roots.len() {
        let root = stat(u, FileKind::Dir)?;
        recs.push(Rec::Root(index, root));
        totals.entries += 1;
        let mut paths: Vec<Vec<Vec<u8>>> = (0..u.int_in_range(0..=6)?)
            .map(|_| (0..u.int_in_range(1..=3)?).map(|_| entry_name(u)).collect())
            .collect::<Result<_>>()?;
        paths.sort_by(|a, b| walk_order(a, b));
        paths.dedup();
        for path in std::iter::once(Vec::new()).chain(paths) {
            if u.ratio(1, 6)? {
                recs.push(Rec::Unreadable(path, u.int_in_range(0..=i32::MAX)?));
                totals.unreadable += 1;
                continue;
            }
            let mut entries = BTreeMap::new();
            for _ in 0..u.int_in_range(0..=8)? {
                let kind = *u.choose(KINDS)?;
                entries.insert(entry_name(u)?, stat(u, kind)?);
            }
            totals.entries += entries.len() as u64;
            totals.directories += 1;
            recs.push(Rec::Dir(path, entries.into_iter().collect()));
        }
        recs.push(Rec::EndRoot(index));
    }
    recs.push(Rec::End(totals));
    let mut want = Baseline { header, recs, users: BTreeMap::new(), groups: BTreeMap::new() };
    let (uids, gids) = want.ids();
    // Id 0 too: the encoder asks the name of an empty block's default owner.
    for uid in uids.into_iter().chain([0]) {
        want.users.extend(id_name(u)?.map(|n| (uid, n)));
    }
    for gid in gids.into_iter().chain([0]) {
        want.groups.extend(id_name(u)?.map(|n| (gid, n)));
    }

    let (bytes, written) = write(&want).expect("the encoder takes records in walk order");
    assert_eq!(written, totals, "the encoder's counts");
    let piece = u.int_in_range(1..=64)?;
    let back = read(Pieces { data: &bytes, piece }).unwrap_or_else(|e| panic!("a written baseline does not read: {e}"));
    assert_same(&back, &want);
    let cut = u.int_in_range(0..=bytes.len() - 1)?;
    assert_cut_refused(&bytes, cut);

    // The file as `baseline take` writes it: the stream in one zstd frame.
    let mut z = file::writer(Vec::new()).expect("a zstd encoder");
    z.write_all(&bytes).expect("compress");
    let zbytes = z.finish().expect("compress");
    let back = read_zstd(&zbytes, piece).unwrap_or_else(|e| panic!("a written baseline file does not read: {e}"));
    assert_same(&back, &want);
    let (h, t) = top::validate(Path::new(FILE), &zbytes).unwrap_or_else(|e| panic!("baseline show refuses it: {e}"));
    assert_eq!((h, t), (want.header.clone(), totals));
    let cut = u.int_in_range(0..=zbytes.len() - 1)?;
    assert!(read_zstd(&zbytes[..cut], piece).is_err(), "a baseline file cut at byte {cut} reads whole");
    assert!(top::validate(Path::new(FILE), &zbytes[..cut]).is_err(), "baseline show reads a file cut at byte {cut}");
    Ok(())
}

/// The first byte of a seed: read in pieces of 7 bytes, as the stream or as the file.
const SEED_STREAM: u8 = 6 << 2;
const SEED_FILE: u8 = SEED_STREAM | 2;

/// The seeds of the baseline target, `(name, input)`: a baseline of the fixture tree `tree`
/// taken by `baseline take` itself, and one written from records with names that are not
/// UTF-8, many owners, two roots and an unreadable directory, each as the file and as the
/// stream; and byte patterns for the round trip.
pub fn seeds(tree: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |name: &str, mode: u8, data: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(data);
        out.push((name.to_owned(), v));
    };
    if let Some(z) = take(tree) {
        add("take-quadlet-host.zst", SEED_FILE, &z);
        let mut stream = Vec::new();
        if file::Reader::new(&z[..]).and_then(|mut r| r.read_to_end(&mut stream)).is_ok() {
            add("take-quadlet-host", SEED_STREAM, &stream);
        }
    }
    if let Ok((stream, _)) = write(&sample()) {
        add("written", SEED_STREAM, &stream);
        let mut z = file::writer(Vec::new()).expect("a zstd encoder");
        if z.write_all(&stream).is_ok()
            && let Ok(zbytes) = z.finish()
        {
            add("written.zst", SEED_FILE, &zbytes);
        }
    }
    let ramp: Vec<u8> = (0..=255).collect();
    let falling: Vec<u8> = (0..=255).rev().collect();
    add("round-trip-ramp", 1, &ramp);
    add("round-trip-falling", 1, &falling);
    out
}

/// `tree` recorded by `baseline take` (the file, zstd), `None` where that fails.
fn take(tree: &Path) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().ok()?;
    let out = dir.path().join("seed.baseline");
    let mut opts = top::TakeOptions::new(vec![tree.canonicalize().ok()?]);
    opts.threads = 1;
    top::take(&opts, &out).ok()?;
    std::fs::read(&out).ok()
}

/// A baseline of two roots, as `baseline take` would write it of a media disk and an appdata
/// tree.
fn sample() -> Baseline {
    let st = |kind, uid, gid, mode| EntryStat { kind, uid, gid, mode };
    let f = |uid, gid, mode| st(FileKind::File, uid, gid, mode);
    let d = |uid, gid, mode| st(FileKind::Dir, uid, gid, mode);
    let n = |s: &[u8]| s.to_vec();
    let mut header = Header::new(
        "homelab-verify 0.1.0".into(),
        Some("oldhost".into()),
        "2026-01-01T00:00:00Z".into(),
        vec!["/mnt/media".into(), "/srv/appdata".into()],
    );
    header.exclude = vec!["*.tmp".into()];
    let recs = vec![
        Rec::Root(0, d(1000, 110, 0o2775)),
        Rec::Dir(
            vec![],
            vec![
                (n(b"Movies"), d(1000, 110, 0o2775)),
                (n(b"caf\xe9.mkv"), f(1000, 110, 0o664)),
                (n(b"latest"), st(FileKind::Symlink, 0, 0, 0o777)),
                (n(b"new\nline"), f(999, 999, 0o4755)),
            ],
        ),
        Rec::Dir(vec![n(b"Movies")], vec![(n(b"a.mkv"), f(1000, 110, 0o664)), (n(b"ab.mkv"), f(1000, 110, 0o600))]),
        Rec::EndRoot(0),
        Rec::Root(1, d(0, 0, 0o755)),
        Rec::Dir(
            vec![],
            vec![
                (n(b"plex"), d(1000, 1000, 0o755)),
                (n(b"postgres"), d(999, 999, 0o700)),
                (n(b"render"), st(FileKind::Char, 0, 303, 0o660)),
            ],
        ),
        Rec::Dir(vec![n(b"plex")], vec![(n(b"Preferences.xml"), f(1000, 1000, 0o644))]),
        Rec::Unreadable(vec![n(b"postgres")], 13),
        Rec::EndRoot(1),
        Rec::End(Totals { entries: 12, directories: 4, unreadable: 1 }),
    ];
    let users = [(0, "root"), (999, "postgres"), (1000, "alice")].map(|(i, s)| (i, s.to_owned())).into();
    let groups = [(0, "root"), (110, "media"), (303, "render"), (1000, "alice")].map(|(i, s)| (i, s.to_owned())).into();
    Baseline { header, recs, users, groups }
}
