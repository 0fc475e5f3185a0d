//! What the drift tests compare the scanner with, in the library's and the CLI's tests: GNU
//! `find`'s list of offending entries, and a full listing of owners and modes.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The NUL-separated paths in `out` (as `find -print0` writes them), as a sorted set.
pub fn split0(out: &[u8]) -> BTreeSet<PathBuf> {
    out.split(|&c| c == 0).filter(|p| !p.is_empty()).map(|p| PathBuf::from(OsString::from_vec(p.to_vec()))).collect()
}

/// Every path `find ARGS -print0` prints (ARGS must end with `-print0`), as a sorted set.
pub fn find(args: &[&OsStr]) -> BTreeSet<PathBuf> {
    let out =
        Command::new("find").args(args).output().expect("GNU find must be installed (scripts/setup-debian --test)");
    assert!(out.status.success(), "find {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    split0(&out.stdout)
}

/// The entries under `root` (itself included) not owned by `uid:gid`, as GNU
/// `find ROOT [-xdev] \( ! -uid U -o ! -gid G \) -print0` lists them.
pub fn find_offending(root: &Path, (uid, gid): (u32, u32), xdev: bool) -> BTreeSet<PathBuf> {
    let (u, g) = (uid.to_string(), gid.to_string());
    let mut args: Vec<&OsStr> = vec![root.as_os_str()];
    if xdev {
        args.push("-xdev".as_ref());
    }
    let rest = ["(", "!", "-uid", &u, "-o", "!", "-gid", &g, ")", "-print0"];
    args.extend(rest.iter().map(OsStr::new));
    find(&args)
}

/// Owner, group and mode (with the file type bits) of every entry under `root`, itself
/// included, symlinks not followed: compared before a fix and after its undo.
pub fn owners(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        m.insert(p.clone(), (md.uid(), md.gid(), md.mode()));
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())) {
                stack.push(e.unwrap().path());
            }
        }
    }
    m
}

/// What GNU `find -printf '%U %G %m %y %p'` says of every entry under `root` (itself
/// included, symbolic links not followed): path -> (uid, gid, permission bits with set-ID and
/// sticky, type letter). The baseline tests' oracle.
pub fn find_listing(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, char)> {
    let out = Command::new("find")
        .arg(root)
        .args(["-printf", "%U %G %m %y %p\\0"])
        .output()
        .expect("GNU find must be installed (scripts/setup-debian --test)");
    assert!(out.status.success(), "find {} failed: {}", root.display(), String::from_utf8_lossy(&out.stderr));
    let mut m = BTreeMap::new();
    for rec in out.stdout.split(|&c| c == 0).filter(|r| !r.is_empty()) {
        let mut parts = rec.splitn(5, |&c| c == b' ');
        let mut num = |radix| {
            let f = parts.next().expect("a field");
            u32::from_str_radix(std::str::from_utf8(f).expect("digits"), radix).expect("a number")
        };
        let (uid, gid, mode) = (num(10), num(10), num(8));
        let kind = parts.next().expect("a type")[0] as char;
        let path = PathBuf::from(OsString::from_vec(parts.next().expect("a path").to_vec()));
        m.insert(path, (uid, gid, mode, kind));
    }
    m
}
