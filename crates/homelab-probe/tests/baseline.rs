//! Baselines against real oracles: the ordered walk against a plain recursive `std::fs` walk
//! with sorted names; `check` against GNU `find -printf '%U %G %m %y %p'` before and after
//! random mutations of random trees (odd names, symbolic links, hard links, set-user-ID files,
//! FIFOs, empty directories); `restore` back to the baseline exactly and `undo` back to the
//! mutated tree exactly; bad input that must change nothing. These tests chown as root, only
//! below a fresh directory of their own (`homelab_test_support::scratch`).
//!
//! `BASELINE_CASES=N` runs the property test with N cases (default 24; scripts/test-all runs
//! the default).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use homelab_probe::baseline::{self, CheckOptions, RestoreOptions, TakeOptions};
use homelab_probe::drift::fix;
use homelab_probe::scan::escape::escape_path;
use homelab_probe::scan::ordered::{self, Event, WalkOptions};
use homelab_test_support::oracle::find_listing;
use proptest::prelude::*;

fn require_root() {
    homelab_test_support::require_root("these tests chown files and make device nodes");
}

fn scratch() -> tempfile::TempDir {
    homelab_test_support::scratch("baseline-test")
}

type Listing = BTreeMap<PathBuf, (u32, u32, u32, char)>;

fn take(root: &Path, file: &Path) -> baseline::TakeReport {
    let mut o = TakeOptions::new(vec![root.to_path_buf()]);
    o.force = true;
    baseline::take(&o, file).unwrap()
}

fn check(file: &Path) -> baseline::BaselineReport {
    let mut o = CheckOptions::new(file.to_path_buf());
    o.samples = 1_000_000;
    baseline::check(&o).unwrap()
}

/// Every directory of a walk, in the order given: (path, names).
fn walked(root: &Path, threads: usize) -> Vec<(PathBuf, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    let opts = WalkOptions { threads, ..WalkOptions::default() };
    ordered::walk(&[root.to_path_buf()], &opts, None, |ev| {
        if let Event::Dir(d) = ev {
            out.push((d.path(), d.iter().map(|(n, _)| n.to_bytes().to_vec()).collect()));
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

/// The same by the obvious means: `read_dir`, names sorted bytewise, subdirectories (not
/// symbolic links) visited in that order after the directory's own listing.
fn reference(dir: &Path, out: &mut Vec<(PathBuf, Vec<Vec<u8>>)>) {
    let mut names: Vec<Vec<u8>> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    names.sort();
    out.push((dir.to_path_buf(), names.clone()));
    for n in names {
        let p = dir.join(OsStr::from_bytes(&n));
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            reference(&p, out);
        }
    }
}

#[test]
fn the_ordered_walk_is_a_sorted_depth_first_walk_whatever_the_threads() {
    require_root();
    let t = scratch();
    let root = t.path().join("edge");
    treegen::edge(&root, 3000, treegen::Spec::default()).unwrap();
    let mut want = Vec::new();
    reference(&root, &mut want);
    for threads in [1, 2, 4, 8] {
        let got = walked(&root, threads);
        assert_eq!(got.len(), want.len(), "{threads} threads: directories");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g, w, "{threads} threads");
        }
    }
}

#[test]
fn a_deep_tree_is_walked_whole_with_few_descriptors() {
    require_root();
    let t = scratch();
    let root = t.path().join("deep");
    treegen::deep(&root, 2500, 1, treegen::Spec::default()).unwrap();
    let n: usize = walked(&root, 4).iter().map(|(_, names)| names.len()).sum();
    assert_eq!(n + 1, find_listing(&root).len());
}

/// A random tree: files (with a mode), set-user-ID files, symbolic links, FIFOs, hard links to
/// the first file made, directories (with a mode); owners from a few service pairs.
#[derive(Debug, Clone)]
enum Node {
    File(u8, u8),
    Setuid(u8),
    Link(u8),
    Fifo(u8),
    Hard,
    Dir(u8, u8, Vec<(u8, Node)>),
}

const OWNERS: [(u32, u32); 5] = [(1000, 110), (999, 999), (0, 0), (33, 33), (70, 70)];
const FILE_MODES: [u32; 4] = [0o644, 0o600, 0o640, 0o664];
const DIR_MODES: [u32; 4] = [0o755, 0o700, 0o2775, 0o1777];

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        4 => (0u8..5, 0u8..4).prop_map(|(o, m)| Node::File(o, m)),
        1 => (0u8..5).prop_map(Node::Setuid),
        1 => (0u8..5).prop_map(Node::Link),
        1 => (0u8..5).prop_map(Node::Fifo),
        1 => Just(Node::Hard),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        (0u8..5, 0u8..4, proptest::collection::vec((any::<u8>(), inner), 0..6)).prop_map(|(o, m, k)| Node::Dir(o, m, k))
    })
}

fn own(path: &Path, o: u8) {
    let (u, g) = OWNERS[o as usize % OWNERS.len()];
    std::os::unix::fs::lchown(path, Some(u), Some(g)).unwrap();
}

fn build(path: &Path, n: &Node, first_file: &mut Option<PathBuf>) {
    match n {
        Node::File(o, m) => {
            std::fs::write(path, "x").unwrap();
            own(path, *o);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODES[*m as usize % 4])).unwrap();
            first_file.get_or_insert_with(|| path.to_path_buf());
        }
        Node::Setuid(o) => {
            std::fs::write(path, "#!/bin/sh\n").unwrap();
            own(path, *o);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o4755)).unwrap();
        }
        Node::Link(o) => {
            std::os::unix::fs::symlink("../..", path).unwrap();
            own(path, *o);
        }
        Node::Fifo(o) => {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o640),
                0,
            )
            .unwrap();
            own(path, *o);
        }
        Node::Hard => match first_file {
            Some(f) => std::fs::hard_link(f.clone(), path).unwrap(),
            None => {
                std::fs::write(path, "").unwrap();
                *first_file = Some(path.to_path_buf());
            }
        },
        Node::Dir(o, m, kids) => {
            std::fs::create_dir(path).unwrap();
            for (name, kid) in kids {
                // Any byte but / and NUL: names that are not UTF-8, newlines, spaces.
                let b = match *name {
                    0 | b'/' | b'.' => b'_',
                    x => x,
                };
                let p = path.join(OsStr::from_bytes(&[b'n', b]));
                if std::fs::symlink_metadata(&p).is_err() {
                    build(&p, kid, first_file);
                }
            }
            own(path, *o);
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODES[*m as usize % 4])).unwrap();
        }
    }
}

/// One change to the tree after the baseline: which entry (an index into the sorted listing)
/// and what happens to it.
#[derive(Debug, Clone)]
enum Mutation {
    Chown(usize, u8),
    Chmod(usize, u8),
    Delete(usize),
    AddFile(usize),
    FileToDir(usize),
}

fn ownership_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..5).prop_map(|(i, o)| Mutation::Chown(i, o)),
        1 => (any::<usize>(), 0u8..4).prop_map(|(i, m)| Mutation::Chmod(i, m)),
    ]
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => ownership_mutation(),
        1 => any::<usize>().prop_map(Mutation::Delete),
        1 => any::<usize>().prop_map(Mutation::AddFile),
        1 => any::<usize>().prop_map(Mutation::FileToDir),
    ]
}

fn mutate(root: &Path, muts: &[Mutation]) {
    for m in muts {
        let listing = find_listing(root);
        let paths: Vec<(&PathBuf, char)> = listing.iter().map(|(p, v)| (p, v.3)).collect();
        let pick = |i: usize| paths[i % paths.len()];
        match *m {
            Mutation::Chown(i, o) => own(pick(i).0, o),
            Mutation::Chmod(i, md) => {
                let (p, k) = pick(i);
                if k != 'l' {
                    let mode = if k == 'd' { DIR_MODES[md as usize % 4] } else { FILE_MODES[md as usize % 4] };
                    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
                }
            }
            Mutation::Delete(i) => {
                let (p, k) = pick(i);
                if p != root {
                    if k == 'd' {
                        std::fs::remove_dir_all(p).unwrap();
                    } else {
                        std::fs::remove_file(p).unwrap();
                    }
                }
            }
            Mutation::AddFile(i) => {
                let (p, k) = pick(i);
                if k == 'd' {
                    let new = p.join("added by a service");
                    if std::fs::symlink_metadata(&new).is_err() {
                        std::fs::write(new, "").unwrap();
                    }
                }
            }
            Mutation::FileToDir(i) => {
                let (p, k) = pick(i);
                if k == 'f' {
                    std::fs::remove_file(p).unwrap();
                    std::fs::create_dir(p).unwrap();
                }
            }
        }
    }
}

/// What a check must find between the listing before and after: change kind -> paths.
fn oracle_diff(before: &Listing, after: &Listing) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut d: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (p, b) in before {
        let e = escape_path(p);
        match after.get(p) {
            None => {
                d.entry("missing").or_default().insert(e);
            }
            Some(a) if a.3 != b.3 => {
                d.entry("type").or_default().insert(e);
            }
            Some(a) => {
                if (a.0, a.1) != (b.0, b.1) {
                    d.entry("owner").or_default().insert(e.clone());
                }
                if b.3 != 'l' && a.2 != b.2 {
                    d.entry("mode").or_default().insert(e);
                }
            }
        }
    }
    for p in after.keys().filter(|p| !before.contains_key(*p)) {
        d.entry("new").or_default().insert(escape_path(p));
    }
    d
}

/// What the check found, in the same shape (every sample is kept).
fn found(r: &baseline::BaselineReport) -> BTreeMap<&'static str, BTreeSet<String>> {
    use homelab_probe::baseline::compare::Change;
    let mut d: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for g in &r.changes {
        let k = match g.change {
            Change::Owner => "owner",
            Change::Mode => "mode",
            Change::Type => "type",
            Change::Missing => "missing",
            Change::New => "new",
        };
        assert_eq!(g.samples.len() as u64, g.count, "every path is a sample here");
        d.entry(k).or_default().extend(g.samples.iter().cloned());
    }
    d
}

fn cases() -> u32 {
    std::env::var("BASELINE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Check finds exactly what changed (by find's account); restore puts every owner and mode
    /// back exactly; undo returns the mutated tree exactly.
    #[test]
    fn check_finds_exactly_the_mutations_restore_returns_and_undo_reverses(
        tree in node(),
        owner_muts in proptest::collection::vec(ownership_mutation(), 1..8),
        other_muts in proptest::collection::vec(any_mutation(), 0..6),
    ) {
        require_root();
        let t = scratch();
        let root = t.path().join("r");
        let tree = match tree { Node::Dir(..) => tree, other => Node::Dir(0, 0, vec![(b'x', other)]) };
        build(&root, &tree, &mut None);
        let file = t.path().join("r.baseline");
        let before = find_listing(&root);
        let taken = take(&root, &file);
        prop_assert_eq!(taken.recorded.entries as usize, before.len());
        prop_assert!(check(&file).ok());

        // Owners and modes only: check, restore, undo.
        mutate(&root, &owner_muts);
        let mutated = find_listing(&root);
        let r = check(&file);
        prop_assert_eq!(found(&r), oracle_diff(&before, &mutated));
        let mut o = RestoreOptions::new(file.clone());
        o.apply = true;
        o.allow_setid = true;
        o.journal = Some(t.path().join("restore.journal"));
        let rep = baseline::restore(&o).unwrap();
        prop_assert!(rep.ok(), "{:?}", rep.applied);
        prop_assert_eq!(&find_listing(&root), &before, "restore returns the baseline exactly");
        let u = fix::undo(&t.path().join("restore.journal")).unwrap();
        prop_assert!(u.complete(), "{:?}", u);
        prop_assert_eq!(&find_listing(&root), &mutated, "undo returns the mutated tree exactly");

        // Anything else too (deletes, new files, types): check still finds exactly that.
        mutate(&root, &other_muts);
        let after = find_listing(&root);
        let r = check(&file);
        prop_assert_eq!(found(&r), oracle_diff(&before, &after));
    }
}

#[test]
fn set_user_id_bits_wait_for_allow_setid() {
    require_root();
    let t = scratch();
    let root = t.path().join("svc");
    std::fs::create_dir(&root).unwrap();
    let hook = root.join("hook");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let file = t.path().join("b");
    take(&root, &file);
    let before = find_listing(&root);
    std::os::unix::fs::lchown(&hook, Some(1234), Some(1234)).unwrap();
    assert_eq!(std::fs::metadata(&hook).unwrap().mode() & 0o7777, 0o755, "chown cleared set-user-ID");
    let mut o = RestoreOptions::new(file.clone());
    o.apply = true;
    o.journal = Some(t.path().join("j1"));
    let r = baseline::restore(&o).unwrap();
    assert!(!r.ok(), "withheld bits are not a clean restore");
    assert_eq!(r.plan.setid_withheld, 1);
    let md = std::fs::metadata(&hook).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (0, 0, 0o755), "owner back, bits not");
    o.allow_setid = true;
    o.journal = Some(t.path().join("j2"));
    let r = baseline::restore(&o).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(find_listing(&root), before);
}

fn caps_of(p: &Path) -> Option<Vec<u8>> {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, "security.capability", &mut buf[..]).ok().map(|n| buf[..n].to_vec())
}

/// chown clears file capabilities: restore reads them first (through the descriptor it checked
/// and changes), leaves the file alone without --allow-setid, with it puts them back after the
/// owner and journals them, and undo puts them back after its own chown.
#[test]
fn file_capabilities_wait_for_allow_setid_and_survive_restore_and_undo() {
    require_root();
    let t = scratch();
    let root = t.path().join("svc");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    let (capped, plain) = (root.join("bin/capped"), root.join("bin/plain"));
    for p in [&capped, &plain] {
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let file = t.path().join("b");
    take(&root, &file);
    let before = find_listing(&root);
    // The wrong owner, and capabilities set since (cap_net_bind_service+ep, VFS_CAP_REVISION_2).
    let caps: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for p in [&capped, &plain] {
        std::os::unix::fs::lchown(p, Some(1234), Some(1234)).unwrap();
    }
    rustix::fs::lsetxattr(&capped, "security.capability", &caps, rustix::fs::XattrFlags::empty()).unwrap();
    let mutated = find_listing(&root);

    let mut o = RestoreOptions::new(file.clone());
    o.apply = true;
    o.journal = Some(t.path().join("j1"));
    let r = baseline::restore(&o).unwrap();
    assert!(!r.ok(), "a withheld file is not a clean restore");
    assert_eq!(r.plan.setid_withheld, 1, "{r:?}");
    assert!(r.plan.notes.iter().any(|n| n.contains("bin/capped: has file capabilities")), "{:?}", r.plan.notes);
    let md = std::fs::symlink_metadata(&capped).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 1234), "left alone");
    assert_eq!(caps_of(&capped).as_deref(), Some(&caps[..]), "capabilities kept");
    assert_eq!(std::fs::symlink_metadata(&plain).unwrap().uid(), 0, "the other file is restored");

    o.allow_setid = true;
    o.journal = Some(t.path().join("j2"));
    let r = baseline::restore(&o).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.applied.as_ref().map(|a| a.changed), Some(1));
    assert_eq!(find_listing(&root), before);
    assert_eq!(caps_of(&capped).as_deref(), Some(&caps[..]), "put back after the chown");
    let journal = std::fs::read_to_string(t.path().join("j2")).unwrap();
    assert!(journal.contains("\"caps\":\"0100000200040000000000000000000000000000\""), "{journal}");

    // Undo the second restore, then the first: the mutated tree, capabilities included.
    assert!(fix::undo(&t.path().join("j2")).unwrap().complete());
    assert!(fix::undo(&t.path().join("j1")).unwrap().complete());
    assert_eq!(find_listing(&root), mutated);
    assert_eq!(caps_of(&capped).as_deref(), Some(&caps[..]), "undo puts them back after its chown");
}

/// The changes are made by worker threads in parts of at most 4,096 (a directory with more is
/// split over parts): every entry of a large directory is journaled once and changed once,
/// and undo reverses them all.
#[test]
fn a_directory_larger_than_a_part_is_restored_whole_on_several_threads() {
    require_root();
    let t = scratch();
    let root = t.path().join("data");
    treegen::flat(&root, 1, 6_000, treegen::Spec::default()).unwrap();
    treegen::media(&root.join("shows"), 4, 2, 30, treegen::Spec::default(), 1).unwrap();
    let file = t.path().join("b");
    let taken = take(&root, &file);
    let before = find_listing(&root);
    std::process::Command::new("chown").args(["-R", "-h", "1234:1234"]).arg(&root).status().unwrap();
    let mutated = find_listing(&root);
    let mut o = RestoreOptions::new(file.clone());
    o.apply = true;
    o.check.threads = 3;
    let journal = t.path().join("j");
    o.journal = Some(journal.clone());
    let r = baseline::restore(&o).unwrap();
    assert!(r.ok(), "{:?}", r.applied);
    let changed = r.applied.as_ref().unwrap().changed;
    assert_eq!(changed, taken.recorded.entries, "every entry");
    assert_eq!(find_listing(&root), before);
    let text = std::fs::read_to_string(&journal).unwrap();
    let paths: BTreeSet<String> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!((paths.len() as u64, text.lines().count() as u64 - 1), (changed, changed), "one record per change");
    assert!(fix::undo(&journal).unwrap().complete());
    assert_eq!(find_listing(&root), mutated);
}

#[test]
fn bad_baselines_are_errors_with_offsets_and_change_nothing() {
    require_root();
    let t = scratch();
    let root = t.path().join("data");
    treegen::media(&root, 5, 2, 20, treegen::Spec::default(), 1).unwrap();
    let file = t.path().join("b");
    take(&root, &file);
    let bytes = std::fs::read(&file).unwrap();
    std::process::Command::new("chown").args(["-R", "1234:1234"]).arg(&root).status().unwrap();
    let mutated = find_listing(&root);
    let restore = |f: &Path| {
        let mut o = RestoreOptions::new(f.to_path_buf());
        o.apply = true;
        o.allow_setid = true;
        o.journal = Some(t.path().join("never.journal"));
        baseline::restore(&o)
    };

    // Truncated: every cut is an error naming a compressed offset; nothing changed.
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        let f = t.path().join(format!("cut{cut}"));
        std::fs::write(&f, &bytes[..cut]).unwrap();
        let e = restore(&f).unwrap_err().to_string();
        assert!(e.contains("compressed byte") || e.contains("empty"), "cut at {cut}: {e}");
        let e = baseline::check(&CheckOptions::new(f.clone())).unwrap_err().to_string();
        assert!(e.contains("nothing was compared"), "{e}");
    }
    // Another version: the same records, version 2.
    let mut raw = Vec::new();
    baseline::file::Reader::new(&bytes[..]).unwrap().read_to_end(&mut raw).unwrap();
    raw[homelab_probe::model::baseline::MAGIC.len()] = 2;
    let v2 = t.path().join("v2");
    let mut w = baseline::file::writer(std::fs::File::create(&v2).unwrap()).unwrap();
    w.write_all(&raw).unwrap();
    w.finish().unwrap();
    let e = restore(&v2).unwrap_err().to_string();
    assert!(e.contains("baseline format version 2; this homelab-probe reads version 1"), "{e}");
    // Records altered in the decompressed stream (a valid zstd frame around them).
    let mut altered = raw.clone();
    altered[homelab_probe::model::baseline::MAGIC.len()] = 1;
    let n = altered.len();
    altered[n - 2] ^= 1;
    let alt = t.path().join("altered");
    let mut w = baseline::file::writer(std::fs::File::create(&alt).unwrap()).unwrap();
    w.write_all(&altered).unwrap();
    w.finish().unwrap();
    let e = restore(&alt).unwrap_err().to_string();
    assert!(e.contains("decompressed stream"), "{e}");
    assert_eq!(find_listing(&root), mutated, "no bad baseline changed anything");
    assert!(!t.path().join("never.journal").exists(), "no journal either");
}

#[test]
fn roots_that_are_slash_or_links_are_refused_and_nothing_is_written() {
    require_root();
    let t = scratch();
    // `/` as a root: refused for a take (so no baseline of it exists to check or restore).
    let out = t.path().join("x");
    let e = baseline::take(&TakeOptions::new(vec!["/".into()]), &out).unwrap_err().to_string();
    assert!(e.contains("refusing"), "{e}");
    assert!(!out.exists());
    // A baseline whose root is now reached through a symbolic link (the disk mounts elsewhere
    // and a link was left in its place): a restore refuses it, a check may read through it.
    let real = t.path().join("real");
    treegen::media(&real, 2, 2, 2, treegen::Spec::default(), 1).unwrap();
    let file = t.path().join("b");
    take(&real, &file);
    let moved = t.path().join("moved");
    std::fs::rename(&real, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &real).unwrap();
    assert!(check(&file).ok());
    let mut o = RestoreOptions::new(file.clone());
    o.apply = true;
    o.journal = Some(t.path().join("j"));
    let e = baseline::restore(&o).unwrap_err().to_string();
    assert!(e.contains("refusing to fix through a symbolic link"), "{e}");
    assert!(!t.path().join("j").exists(), "refused before the journal");
}

#[test]
fn a_path_that_is_now_a_symlink_is_a_finding_never_followed() {
    require_root();
    let t = scratch();
    let root = t.path().join("appdata");
    let target = t.path().join("stands-for-etc");
    std::fs::create_dir_all(root.join("postgres")).unwrap();
    std::fs::write(root.join("postgres/PG_VERSION"), "16").unwrap();
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("passwd"), "").unwrap();
    let file = t.path().join("b");
    take(&root, &file);
    // The directory replaced by a link elsewhere (to /etc, in the VM scenario), and every owner
    // changed, the link's target's files included.
    std::fs::remove_dir_all(root.join("postgres")).unwrap();
    std::os::unix::fs::symlink(&target, root.join("postgres")).unwrap();
    std::process::Command::new("chown").args(["-R", "1234:1234"]).arg(&root).arg(&target).status().unwrap();
    std::os::unix::fs::lchown(root.join("postgres"), Some(1234), Some(1234)).unwrap();
    let target_before = find_listing(&target);
    let mut o = RestoreOptions::new(file.clone());
    o.apply = true;
    o.journal = Some(t.path().join("j"));
    let r = baseline::restore(&o).unwrap();
    assert_eq!(r.plan.type_changed, 1);
    assert!(r.plan.notes.iter().any(|n| n.contains("postgres: its type changed")), "{:?}", r.plan.notes);
    assert_eq!(r.check.missing, 1, "PG_VERSION is missing (the link is not followed)");
    assert_eq!(find_listing(&target), target_before, "nothing behind the link changed");
    let md = std::fs::symlink_metadata(&root).unwrap();
    assert_eq!((md.uid(), md.gid()), (0, 0), "the root's own owner is back");
}

#[test]
fn map_and_by_name_compare_a_moved_root_and_renumbered_ids() {
    require_root();
    let t = scratch();
    let old = t.path().join("old");
    treegen::media(&old, 3, 2, 5, treegen::Spec { owner: (0, 0), drift_ppm: 0, seed: 1, per_dir_owners: false }, 1)
        .unwrap();
    let file = t.path().join("b");
    take(&old, &file);
    let new = t.path().join("new");
    std::fs::rename(&old, &new).unwrap();
    let mut o = CheckOptions::new(file.clone());
    o.map = vec![(old.clone(), new.clone())];
    let r = baseline::check(&o).unwrap();
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.roots[0].live, escape_path(&new));
    // A map that names no root is bad usage.
    o.map = vec![("/nowhere".into(), new.clone())];
    assert!(baseline::check(&o).unwrap_err().to_string().contains("no root of the baseline"));
    // By name: root's files are root's under any number only if the names agree; here the
    // numbers are the same, so both ways pass, and a change to another named id fails both.
    o.map = vec![(old.clone(), new.clone())];
    o.by_name = true;
    assert!(baseline::check(&o).unwrap().ok());
    std::os::unix::fs::lchown(&new, Some(1), Some(1)).unwrap();
    let r = baseline::check(&o).unwrap();
    assert_eq!(r.owner, 1);
    assert_eq!(r.changes[0].from_names.as_deref(), Some("root:root"), "{:?}", r.changes);
}

#[test]
fn check_with_a_baseline_section_passes_then_fails_with_the_restore_command() {
    use homelab_probe::model::finding::{Probe, Status};
    require_root();
    let t = scratch();
    let root = t.path().join("appdata");
    treegen::media(&root, 3, 2, 5, treegen::Spec { per_dir_owners: true, ..treegen::Spec::default() }, 1).unwrap();
    let file = t.path().join("owners.baseline");
    take(&root, &file);
    let toml = format!("version = 1\n[[baseline]]\nfile = {}\n", toml::Value::String(file.display().to_string()));
    let exp = homelab_probe::Expectations::from_toml_str(&toml, None).unwrap();
    let run = || homelab_probe::check::run_probes(&homelab_probe::host::Host::live(), &exp, &[Probe::Drift]);
    let f = run();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].check.as_str(), f[0].status), ("baseline_owner", Status::Pass), "{f:#?}");

    // Every owner under one show changed: the finding counts them (the oracle: find) and names
    // the restore.
    let show = root.join("show0001");
    let before = find_listing(&show);
    std::process::Command::new("chown").args(["-R", "1234:1234"]).arg(&show).status().unwrap();
    let after = find_listing(&show);
    let changed = before.iter().filter(|(p, b)| after[*p].0 != b.0 || after[*p].1 != b.1).count() as u64;
    assert!(changed > 0);
    let f = run();
    let fail = f.iter().find(|x| x.check == "baseline_owner").unwrap();
    assert_eq!(fail.status, Status::Fail, "{f:#?}");
    assert_eq!(fail.evidence["owner"], serde_json::json!(changed), "{f:#?}");
    assert!(fail.remedy.as_ref().unwrap().text.contains("homelab-verify baseline restore"), "{f:#?}");
}
