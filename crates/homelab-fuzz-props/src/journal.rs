//! The drift fix's undo journal (JSON Lines), which `undo` reads back. Only the reader and the
//! writer are exercised: `undo` itself changes owners, so it is never given fuzzed input.
//!
//! The first byte picks the property:
//! - even: the rest is a journal file; reading it gives a header or an error about line 1,
//!   then records and bad lines numbered within the file, in order;
//! - odd: the rest builds a header and records (through `arbitrary`); they are written as a
//!   fix writes them, and read back whole; then the file is cut at an arbitrary byte, as a
//!   crash leaves it, and what reads back is a prefix of what was written.

use std::path::Path;

use arbitrary::{Result, Unstructured};
use homelab_probe::drift::DriftError;
use homelab_probe::drift::journal::{self, Header, JOURNAL_KIND, JOURNAL_VERSION, Line, Record};

use crate::arb;

/// A fresh directory for one input's journal file, removed when dropped (in `/dev/shm` where it
/// exists: the writer syncs, which costs nothing there).
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let made = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    made.or_else(|_| tempfile::tempdir()).expect("a temporary directory")
}

/// The journal target.
pub fn journal(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        read_any(rest);
    } else {
        let _ = round_trip(&mut Unstructured::new(rest));
    }
}

/// Everything read from a journal file: the header and the lines after it.
fn read_all(path: &Path) -> std::result::Result<(Header, Vec<Line>, bool), DriftError> {
    let mut r = journal::read(path)?;
    let mut lines = Vec::new();
    while let Some(l) = r.next_record()? {
        lines.push(l);
    }
    Ok((r.header.clone(), lines, r.torn_tail))
}

fn read_any(bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("fix.journal");
    std::fs::write(&path, bytes).expect("write the journal");
    // A position after the last newline is a line too (a last line without its newline).
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    match read_all(&path) {
        Ok((h, read, _)) => {
            assert_eq!((h.journal.as_str(), h.version), (JOURNAL_KIND, JOURNAL_VERSION));
            assert_eq!(h.roots.len(), h.root_devs.len());
            let mut last = 1;
            for l in &read {
                let no = match l {
                    Line::Record(no, _) => *no,
                    Line::Bad(no, msg) => {
                        assert!(msg.contains(&format!(":{no}: ")), "a bad line's message names no line: {msg}");
                        *no
                    }
                };
                assert!(no > last && no <= lines, "journal line {no} after {last}, the file has {lines}");
                last = no;
            }
        }
        Err(DriftError::Journal { message, .. }) => {
            assert!(message.contains("line 1"), "an error that is not about the header names no line: {message}")
        }
        Err(e) => panic!("not a journal error: {e}"),
    }
}

fn header(u: &mut Unstructured) -> Result<Header> {
    let n = u.int_in_range(0..=3)?;
    let mut roots = Vec::new();
    let mut root_devs = Vec::new();
    for _ in 0..n {
        roots.push(arb::escaped_path(u)?);
        root_devs.push(u.arbitrary()?);
    }
    Ok(Header {
        journal: JOURNAL_KIND.into(),
        version: JOURNAL_VERSION,
        created: arb::text(u)?,
        roots,
        root_devs,
        uid: if u.arbitrary()? { Some(arb::id(u)?) } else { None },
        gid: if u.arbitrary()? { Some(arb::id(u)?) } else { None },
        baseline: if u.arbitrary()? { Some(arb::escaped_path(u)?) } else { None },
    })
}

fn record(u: &mut Unstructured) -> Result<Record> {
    Ok(Record {
        path: arb::escaped_path(u)?,
        dev: u.arbitrary()?,
        ino: u.arbitrary()?,
        btime: if u.arbitrary()? {
            Some(format!("{}.{:09}", u.arbitrary::<i64>()?, u.int_in_range(0..=999_999_999)?))
        } else {
            None
        },
        mode: u.arbitrary()?,
        caps: if u.arbitrary()? { Some(arb::text(u)?) } else { None },
        uid: arb::id(u)?,
        gid: arb::id(u)?,
        new_uid: arb::id(u)?,
        new_gid: arb::id(u)?,
        new_mode: if u.arbitrary()? { Some(u.int_in_range(0..=0o7777)?) } else { None },
    })
}

fn round_trip(u: &mut Unstructured) -> Result<()> {
    let header = header(u)?;
    let records: Vec<Record> = (0..u.int_in_range(0..=8)?).map(|_| record(u)).collect::<Result<_>>()?;
    let dir = scratch();
    let path = dir.path().join("fix.journal");
    let mut w = journal::Writer::create(&path, &header).expect("create the journal");
    // As the fix writes them: one JSON object a line, a batch at a time.
    let lines: String = records.iter().map(|r| serde_json::to_string(r).expect("a record serialises") + "\n").collect();
    w.append_synced(lines.as_bytes()).expect("append");
    drop(w);
    let (h, read, torn) = read_all(&path).expect("a written journal reads back");
    assert_eq!(h, header);
    assert!(!torn, "a whole journal read as torn");
    let got: Vec<&Record> = read
        .iter()
        .map(|l| match l {
            Line::Record(_, r) => r,
            Line::Bad(no, msg) => panic!("line {no} of a written journal is bad: {msg}"),
        })
        .collect();
    assert_eq!(got, records.iter().collect::<Vec<_>>());

    // A crash leaves a prefix of the file: a header line that is whole (it was synced before
    // any change), and records cut anywhere.
    let bytes = std::fs::read(&path).expect("read the journal");
    let head = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |i| i + 1);
    let cut = u.int_in_range(head..=bytes.len())?;
    std::fs::write(&path, &bytes[..cut]).expect("cut the journal");
    let (_, read, torn) = read_all(&path).expect("a cut journal reads");
    let whole = bytes[head..cut].iter().filter(|&&b| b == b'\n').count();
    for (i, l) in read.iter().enumerate() {
        match l {
            Line::Record(_, r) => assert_eq!(r, &records[i], "record {i} of a cut journal"),
            Line::Bad(no, msg) => panic!("line {no} of a cut journal is bad: {msg}"),
        }
    }
    // A cut inside the last line is a torn tail unless what is left still parses (the cut
    // fell after its closing brace).
    assert!(read.len() == whole || read.len() == whole + 1, "{} records from {whole} whole lines", read.len());
    assert_eq!(torn, read.len() == whole && cut > head && bytes[cut - 1] != b'\n', "torn tail at byte {cut}");
    Ok(())
}
