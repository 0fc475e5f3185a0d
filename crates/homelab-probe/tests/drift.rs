//! The drift scanner against real oracles: GNU `find` on generated trees with every edge case
//! (sorted outputs must be equal), a naive `std::fs` walker on random trees (proptest), and
//! the fix/undo round trip on real owners. These tests chown files and mount filesystems:
//! they need root, as in CI, and fail loudly without it.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use homelab_probe::drift::{self, DriftOptions, fix};
use homelab_probe::scan::{self, DirRef, Offenders, Owner, ScanOptions};
use homelab_test_support::oracle::{self, owners};
use proptest::prelude::*;

const U: u32 = 1000;
const G: u32 = 110;
const OWNER: Owner = Owner { uid: U, gid: G };

fn require_root() {
    homelab_test_support::require_root("these tests chown files, mount filesystems and switch users");
}

fn spec(drift_ppm: u32) -> treegen::Spec {
    treegen::Spec { owner: (U, G), drift_ppm, seed: 7, per_dir_owners: false }
}

fn find(args: &[&std::ffi::OsStr]) -> BTreeSet<PathBuf> {
    oracle::find(args)
}

fn find_offending(root: &Path, xdev: bool) -> BTreeSet<PathBuf> {
    oracle::find_offending(root, (U, G), xdev)
}

/// Every offending path the scanner reports (collected through the sink).
fn ours(opts: &DriftOptions) -> (BTreeSet<PathBuf>, drift::DriftReport) {
    let found = Mutex::new(BTreeSet::new());
    let sink = |_w: usize, dir: &DirRef<'_>, es: &Offenders<'_>| {
        let mut f = found.lock().unwrap();
        for e in es.iter() {
            assert!(f.insert(dir.entry_path(e.name)), "reported twice: {:?}", dir.entry_path(e.name));
        }
    };
    let report = drift::scan(opts, Some(&sink)).unwrap();
    (found.into_inner().unwrap(), report)
}

fn opts(root: &Path) -> DriftOptions {
    DriftOptions::new(vec![root.to_path_buf()], OWNER)
}

fn tempdir() -> tempfile::TempDir {
    // Under /var/tmp: a real disk filesystem (ext4 here and in CI), not a tmpfs /tmp.
    tempfile::Builder::new().prefix("drift-test").tempdir_in("/var/tmp").unwrap()
}

#[test]
fn edge_cases_equal_find() {
    require_root();
    let t = tempdir();
    let root = t.path().join("edge");
    // 20 % drift so every kind of entry has offenders.
    let made = treegen::edge(&root, 5000, spec(200_000)).unwrap();
    let root = root.canonicalize().unwrap();
    let (got, report) = ours(&opts(&root));
    let want = find_offending(&root, true);
    assert_eq!(got, want);
    let (entries, offending) = made.counts();
    assert_eq!(report.offending, offending);
    assert_eq!(report.stats.entries, entries);
    assert_eq!(report.errors, 0);
    // Names that are not UTF-8 are reported, escaped, losslessly.
    let all: Vec<String> = report.by_owner.iter().flat_map(|c| c.samples.clone()).collect();
    for s in &all {
        assert!(got.contains(&homelab_probe::scan::escape::unescape_path(s).unwrap()), "{s}");
    }
    // The same with one thread (no stealing, no splitting).
    let mut one = opts(&root);
    one.threads = 1;
    assert_eq!(ours(&one).0, want);
}

#[test]
fn media_tree_equals_find_and_counts_add_up() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    treegen::media(&root, 30, 4, 25, spec(20_000), 2).unwrap();
    let (got, r) = ours(&opts(&root));
    assert_eq!(got, find_offending(&root, true));
    assert_eq!(r.by_owner.iter().map(|c| c.count).sum::<u64>(), r.offending);
    assert_eq!(r.by_top_level.iter().map(|c| c.count).sum::<u64>(), r.offending);
    assert_eq!(r.stats.entries, 1 + 30 + 30 * 4 + 30 * 4 * 25);
    // Per top-level directory, the counts are find's.
    for top in &r.by_top_level {
        let n = got
            .iter()
            .filter(|p| p.strip_prefix(&root).unwrap().iter().next().unwrap().as_bytes() == top.name.as_bytes())
            .count();
        assert_eq!(n as u64, top.count, "{}", top.name);
    }
    // Samples are the lexically first paths of each class.
    for c in &r.by_owner {
        assert!(c.samples.windows(2).all(|w| w[0] < w[1]));
        assert!(c.samples.len() <= 10);
    }
}

#[test]
fn flat_200k_directory_equals_find() {
    require_root();
    let t = tempdir();
    let root = t.path().join("flat");
    treegen::flat(&root, 1, 200_000, spec(1500)).unwrap();
    let (got, r) = ours(&opts(&root));
    assert_eq!(got, find_offending(&root, true));
    assert_eq!(r.stats.entries, 200_002);
}

#[test]
fn deep_tree_with_few_descriptors_equals_find() {
    require_root();
    let t = tempdir();
    let root = t.path().join("deep");
    treegen::deep(&root, 1500, 1, spec(50_000)).unwrap();
    let (got, r) = ours(&opts(&root));
    assert_eq!(got, find_offending(&root, true));
    assert_eq!(r.errors, 0);
    assert_eq!(r.stats.entries, 1 + 1500 * 4);
}

#[test]
fn excludes_prune_like_find() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    treegen::media(&root, 10, 3, 20, spec(100_000), 1).unwrap();
    let mut o = opts(&root);
    o.exclude = vec!["Season 02".into(), "show0003/**".into(), "*E01?*".into()];
    let (got, r) = ours(&o);
    let (u, g) = (U.to_string(), G.to_string());
    let want = find(
        &[
            root.as_os_str(),
            "-xdev".as_ref(),
            "(".as_ref(),
            "-name".as_ref(),
            "Season 02".as_ref(),
            "-o".as_ref(),
            "-path".as_ref(),
            root.join("show0003/*").as_os_str(),
            "-o".as_ref(),
            "-name".as_ref(),
            "*E01?*".as_ref(),
            ")".as_ref(),
            "-prune".as_ref(),
            "-o".as_ref(),
            "(".as_ref(),
            "!".as_ref(),
            "-uid".as_ref(),
            u.as_ref(),
            "-o".as_ref(),
            "!".as_ref(),
            "-gid".as_ref(),
            g.as_ref(),
            ")".as_ref(),
            "-print0".as_ref(),
        ][..],
    );
    assert_eq!(got, want);
    assert!(r.stats.excluded > 0);
}

fn mount(args: &[&str]) {
    let st = Command::new("mount").args(args).status().expect("mount (util-linux) must be installed");
    assert!(st.success(), "mount {args:?} failed: these tests need root with CAP_SYS_ADMIN, as in CI");
}

fn umount(p: &Path) {
    let _ = Command::new("umount").arg(p).status();
}

#[test]
fn mount_points_are_boundaries_unless_cross_mounts() {
    require_root();
    let t = tempdir();
    let root = t.path().join("tree");
    treegen::media(&root, 4, 2, 5, spec(100_000), 1).unwrap();
    let other = root.join("show0002/other-fs");
    std::fs::create_dir(&other).unwrap();
    mount(&["-t", "tmpfs", "-o", "size=4m", "tmpfs", other.to_str().unwrap()]);
    let _g = Guard(other.clone());
    std::fs::write(other.join("inside"), "").unwrap(); // root:root on the tmpfs
    let bind_src = root.join("show0001");
    let bind = root.join("show0003/bind");
    std::fs::create_dir(&bind).unwrap();
    mount(&["--bind", bind_src.to_str().unwrap(), bind.to_str().unwrap()]);
    let _g2 = Guard(bind.clone());

    let (got, r) = ours(&opts(&root));
    // Like find -xdev for the other device: the mount point itself is tested, not descended.
    let want_xdev = find_offending(&root, true);
    assert!(got.contains(&other), "the tmpfs mount point (root-owned) is itself reported");
    assert!(!got.contains(&other.join("inside")));
    // The bind mount is on the same device, which find -xdev descends; the scanner treats
    // STATX_ATTR_MOUNT_ROOT as a boundary, so it is find's set minus what is below `bind`.
    let want: BTreeSet<PathBuf> = want_xdev.into_iter().filter(|p| !p.starts_with(&bind) || *p == bind).collect();
    assert_eq!(got, want);
    assert_eq!(r.stats.mount_points, 2);

    let mut cross = opts(&root);
    cross.cross_mounts = true;
    assert_eq!(ours(&cross).0, find_offending(&root, false));
}

struct Guard(PathBuf);
impl Drop for Guard {
    fn drop(&mut self) {
        umount(&self.0);
    }
}

#[test]
fn entries_vanishing_mid_scan_are_counted_not_errors() {
    require_root();
    let t = tempdir();
    let root = t.path().join("flat");
    treegen::flat(&root, 4, 5000, spec(500_000)).unwrap();
    let dirs: Vec<PathBuf> = (0..4).map(|d| root.join(format!("flat{d:02}"))).collect();
    let removed = AtomicU64::new(0);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            for d in &dirs {
                for i in (0..5000).rev() {
                    if std::fs::remove_file(d.join(format!("file{i:07}.jpg"))).is_ok() {
                        removed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let mut o = opts(&root);
        o.threads = 2;
        drift::scan(&o, None).unwrap()
    });
    // Whatever interleaving happened: no error, and every entry was either seen or vanished.
    assert_eq!(report.errors, 0, "{:?}", report.error_samples);
    assert!(report.stats.entries + report.vanished <= 1 + 4 + 20_000);
    assert!(report.stats.entries >= 5);
}

#[test]
fn fix_then_undo_restores_every_owner_exactly() {
    require_root();
    let t = tempdir();
    let root = t.path().join("edge");
    treegen::edge(&root, 3000, spec(300_000)).unwrap();
    // A set-user-ID file: chown clears the bit; undo must put it back.
    let suid = root.join("names/suid-tool");
    std::fs::write(&suid, "").unwrap();
    std::os::unix::fs::lchown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::os::unix::fs::PermissionsExt::from_mode(0o4755)).unwrap();
    // A file with capabilities (cap_net_raw+ep, VFS_CAP_REVISION_2): chown drops them too.
    let capped = root.join("names/cap-tool");
    std::fs::write(&capped, "").unwrap();
    std::os::unix::fs::lchown(&capped, Some(0), Some(0)).unwrap();
    let caps: [u8; 20] = [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rustix::fs::lsetxattr(&capped, "security.capability", &caps, rustix::fs::XattrFlags::empty()).unwrap();
    let before = owners(&root);
    let journal = t.path().join("fix.journal");

    let mut o = opts(&root);
    o.allow_setid = true;
    let report = fix::apply(&o, &journal).unwrap();
    let f = report.fix.as_ref().unwrap();
    assert_eq!(f.failed, 0, "{:?}", f.failures);
    assert_eq!(f.changed, report.offending);
    assert_eq!((f.cleared_setid, f.cleared_capabilities), (1, 1), "{f:?}");
    // Now clean; the journal has one record per change.
    let mut gone = [0u8; 64];
    assert!(rustix::fs::lgetxattr(&capped, "security.capability", &mut gone[..]).is_err(), "chown dropped them");
    let again = drift::scan(&opts(&root), None).unwrap();
    assert_eq!(again.offending, 0);
    let lines = std::fs::read_to_string(&journal).unwrap().lines().count() as u64;
    assert_eq!(lines, 1 + report.offending);

    let u = fix::undo(&journal).unwrap();
    assert!(u.complete(), "{u:?}");
    assert_eq!(u.restored, report.offending);
    assert_eq!(owners(&root), before, "every owner and mode is back");
    let mut back = [0u8; 64];
    let n = rustix::fs::lgetxattr(&capped, "security.capability", &mut back[..]).expect("capabilities are back");
    assert_eq!(&back[..n], &caps);
    // Undo twice is harmless.
    let u2 = fix::undo(&journal).unwrap();
    assert_eq!((u2.restored, u2.already), (0, report.offending));
    // The journal refuses to be overwritten.
    assert!(fix::apply(&o, &journal).is_err());
}

#[test]
fn undo_never_touches_a_replaced_file_or_an_owner_changed_since() {
    require_root();
    let t = tempdir();
    let root = t.path().join("m");
    std::fs::create_dir_all(root.join("a")).unwrap();
    for n in ["a/replaced", "a/rechowned", "a/kept"] {
        std::fs::write(root.join(n), "").unwrap();
        std::os::unix::fs::lchown(root.join(n), Some(0), Some(0)).unwrap();
    }
    std::os::unix::fs::lchown(&root, Some(U), Some(G)).unwrap();
    std::os::unix::fs::lchown(root.join("a"), Some(U), Some(G)).unwrap();
    let journal = t.path().join("j");
    let r = fix::apply(&opts(&root), &journal).unwrap();
    assert_eq!(r.fix.unwrap().changed, 3);
    // A new file takes the path; another gets a new owner from someone else. ext4 gives the
    // new file the freed inode number at once; its birth time (a timer tick later, at least:
    // the fix happened between) tells it apart.
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::fs::remove_file(root.join("a/replaced")).unwrap();
    std::fs::write(root.join("a/replaced"), "new").unwrap();
    std::os::unix::fs::lchown(root.join("a/replaced"), Some(U), Some(G)).unwrap();
    std::os::unix::fs::lchown(root.join("a/rechowned"), Some(33), Some(33)).unwrap();
    // A journal line pointing outside the roots is refused, never followed.
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str(
        r#"{"path":"/etc/passwd","dev":1,"ino":1,"mode":33188,"uid":5,"gid":5,"new_uid":0,"new_gid":0}
"#,
    );
    let escape = root.join("a/../../outside");
    text.push_str(&format!(
        r#"{{"path":"{}","dev":1,"ino":1,"mode":33188,"uid":5,"gid":5,"new_uid":0,"new_gid":0}}
"#,
        escape.display()
    ));
    std::fs::write(&journal, text).unwrap();
    let etc = std::fs::metadata("/etc/passwd").unwrap();

    let u = fix::undo(&journal).unwrap();
    assert_eq!(u.restored, 1, "{u:?}");
    assert_eq!(u.skipped, 2, "{u:?}");
    assert_eq!(u.failed, 2, "{u:?}");
    assert!(!u.complete());
    let md = |n: &str| std::fs::symlink_metadata(root.join(n)).map(|m| (m.uid(), m.gid())).unwrap();
    assert_eq!(md("a/kept"), (0, 0));
    assert_eq!(md("a/replaced"), (U, G), "the new file is left alone");
    assert_eq!(md("a/rechowned"), (33, 33), "an owner set since the fix is left alone");
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().uid(), etc.uid());
    assert!(u.problems.iter().any(|p| p.contains("another file has this path")), "{:?}", u.problems);
    assert!(u.problems.iter().any(|p| p.contains("not under any root")), "{:?}", u.problems);
}

#[test]
fn torn_journal_tail_is_ignored() {
    require_root();
    let t = tempdir();
    let root = t.path().join("m");
    treegen::media(&root, 5, 2, 10, spec(200_000), 1).unwrap();
    let before = owners(&root);
    let journal = t.path().join("j");
    fix::apply(&opts(&root), &journal).unwrap();
    // A crash while writing a batch leaves half a line; its change never happened.
    let mut f = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
    std::io::Write::write_all(&mut f, br#"{"path":"/var/tmp/x","dev":1,"in"#).unwrap();
    drop(f);
    let u = fix::undo(&journal).unwrap();
    assert!(u.torn_tail);
    assert!(u.complete(), "{u:?}");
    assert_eq!(owners(&root), before);
}

#[test]
fn roots_are_refused_for_fixes_when_unsafe() {
    require_root();
    let t = tempdir();
    let root = t.path().join("data");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
    let j = t.path().join("j");
    let err = |roots: Vec<PathBuf>| {
        fix::apply(&DriftOptions::new(roots, OWNER), &j).expect_err("must be refused").to_string()
    };
    assert!(err(vec!["/".into()]).contains("refusing"));
    assert!(err(vec![root.join("sub/../../..")]).contains("refusing"));
    assert!(err(vec![root.join("sub/..")]).contains("`..`"));
    assert!(err(vec![t.path().join("link")]).contains("symbolic link"));
    assert!(err(vec![]).contains("no root"));
    assert!(!j.exists(), "nothing, not even the journal, is written when refused");
    // Scanning (read only) through a symbolic link is fine and reports the real path.
    let r = drift::scan(&DriftOptions::new(vec![t.path().join("link")], OWNER), None).unwrap();
    assert_eq!(r.roots, [root.canonicalize().unwrap().to_str().unwrap()]);
    // Nested roots are walked once.
    let r = drift::scan(&DriftOptions::new(vec![root.clone(), root.join("sub")], OWNER), None).unwrap();
    assert_eq!(r.roots.len(), 1);
}

#[test]
fn limits_stop_the_walk_and_say_so() {
    require_root();
    let t = tempdir();
    let root = t.path().join("m");
    treegen::media(&root, 20, 5, 20, spec(0), 1).unwrap();
    let mut o = opts(&root);
    o.max_entries = Some(100);
    let r = drift::scan(&o, None).unwrap();
    assert_eq!(r.stats.stopped, Some(scan::StopReason::MaxEntries));
    assert!(r.stats.entries < 2121);
    assert!(!r.clean());
}

/// A random small tree: directories, files and symbolic links with owners from a few pairs.
#[derive(Debug, Clone)]
enum Node {
    File(u8),
    Link(u8),
    Dir(u8, Vec<(u8, Node)>),
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![(0u8..4).prop_map(Node::File), (0u8..4).prop_map(Node::Link)];
    leaf.prop_recursive(5, 60, 6, |inner| {
        ((0u8..4), proptest::collection::vec((any::<u8>(), inner), 0..6)).prop_map(|(o, kids)| Node::Dir(o, kids))
    })
}

const PAIRS: [(u32, u32); 4] = [(U, G), (0, 0), (U, 0), (0, G)];

fn build(path: &Path, n: &Node) {
    let own = |o: u8| PAIRS[o as usize % 4];
    let (o, is_dir) = match n {
        Node::File(o) => {
            std::fs::write(path, "").unwrap();
            (own(*o), false)
        }
        Node::Link(o) => {
            std::os::unix::fs::symlink("../..", path).unwrap();
            (own(*o), false)
        }
        Node::Dir(o, kids) => {
            std::fs::create_dir(path).unwrap();
            for (name, kid) in kids {
                // Names from any bytes but / and NUL, some not UTF-8.
                let b = match *name {
                    0 | b'/' | b'.' => b'_',
                    x => x,
                };
                let p = path.join(std::ffi::OsStr::from_bytes(&[b'n', b]));
                if std::fs::symlink_metadata(&p).is_err() {
                    build(&p, kid);
                }
            }
            (own(*o), true)
        }
    };
    let _ = is_dir;
    std::os::unix::fs::lchown(path, Some(o.0), Some(o.1)).unwrap();
}

/// The obvious walker: std::fs, recursion, lstat.
fn naive(root: &Path, out: &mut BTreeSet<PathBuf>) {
    let md = std::fs::symlink_metadata(root).unwrap();
    if (md.uid(), md.gid()) != (U, G) {
        out.insert(root.to_path_buf());
    }
    if md.is_dir() {
        for e in std::fs::read_dir(root).unwrap() {
            naive(&e.unwrap().path(), out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_match_a_naive_walker(tree in node(), threads in 1usize..4) {
        require_root();
        let t = tempdir();
        let root = t.path().join("r");
        let tree = match tree { Node::Dir(..) => tree, other => Node::Dir(0, vec![(b'x', other)]) };
        build(&root, &tree);
        let mut want = BTreeSet::new();
        naive(&root, &mut want);
        let mut o = opts(&root);
        o.threads = threads;
        let (got, r) = ours(&o);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(r.offending, want.len() as u64);
        // The scanner facility directly, counting what it sees.
        let count = AtomicU64::new(0);
        struct V<'a>(&'a AtomicU64);
        impl scan::Visitor for V<'_> {
            fn offenders(&self, _: usize, _: &DirRef<'_>, e: &Offenders<'_>) { self.0.fetch_add(e.len() as u64, Ordering::Relaxed); }
            fn problem(&self, _: usize, p: scan::Problem) { panic!("{p}") }
        }
        let root = root.canonicalize().unwrap();
        scan::scan(&[root], &ScanOptions::new(OWNER), &V(&count)).unwrap();
        prop_assert_eq!(count.load(Ordering::Relaxed), want.len() as u64);
    }
}

/// A bind mount made by a test, read-only, under a temporary directory the test made. Dropped
/// (unmounted) before that directory; when it cannot be unmounted, the directory is kept, so
/// that removing it can never reach into what is mounted there.
struct BindMount {
    at: PathBuf,
}

impl BindMount {
    fn read_only(source: &Path, at: &Path) -> BindMount {
        assert!(
            at.starts_with("/var/tmp/") && at.is_dir(),
            "bind mounts go on a fresh directory under /var/tmp: {at:?}"
        );
        mount(&["--bind", "-o", "ro", source.to_str().unwrap(), at.to_str().unwrap()]);
        let m = BindMount { at: at.to_path_buf() };
        let st = rustix::fs::statvfs(at).unwrap();
        assert!(st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY), "the bind mount at {at:?} is not read-only");
        m
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
        if rustix::fs::statx(rustix::fs::CWD, &self.at, rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::empty())
            .is_ok_and(|s| s.stx_attributes.contains(rustix::fs::StatxAttributes::MOUNT_ROOT))
        {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// The temporary directory, kept (never removed) when a mount is still on one of `at`.
fn keep_if_mounted(t: tempfile::TempDir, at: &[&Path]) {
    for at in at {
        let mounted =
            rustix::fs::statx(rustix::fs::CWD, *at, rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::empty())
                .is_ok_and(|s| s.stx_attributes.contains(rustix::fs::StatxAttributes::MOUNT_ROOT));
        if mounted {
            let kept = t.keep();
            panic!("{at:?} is still mounted; {kept:?} is left in place");
        }
    }
}

fn refusal(r: Result<drift::DriftReport, drift::DriftError>) -> String {
    match r {
        Err(e @ drift::DriftError::SystemDirectory(_)) => e.to_string(),
        other => panic!("expected a system-directory refusal, got {other:?}"),
    }
}

#[test]
fn a_bind_mount_of_the_root_is_refused_by_identity_dry_run_only() {
    require_root();
    let t = tempdir();
    let at = t.path().join("bindroot");
    std::fs::create_dir(&at).unwrap();
    let tree = t.path().join("data");
    treegen::media(&tree, 2, 2, 2, spec(0), 1).unwrap();
    let inner = tree.join("show0001/host");
    std::fs::create_dir(&inner).unwrap();
    {
        // Read-only, and only read: scans and plans, never --apply.
        let _m = BindMount::read_only(Path::new("/"), &at);
        let mut o = opts(&at);
        o.plan_fix = true;
        let msg = refusal(drift::scan(&o, None));
        assert!(msg.starts_with(&format!("{} is `/`: refusing to scan or fix", at.display())), "{msg}");
        // The same through a symbolic link to it.
        std::os::unix::fs::symlink(&at, t.path().join("link")).unwrap();
        assert!(refusal(drift::scan(&opts(&t.path().join("link")), None)).contains("is `/`"));
        // A tree that holds a bind mount of `/`: the walk stops at it, even without descending.
        let _m2 = BindMount::read_only(Path::new("/"), &inner);
        let msg = refusal(drift::scan(&opts(&tree), None));
        assert!(msg.starts_with(&format!("{} is `/`", inner.display())), "{msg}");
        let mut cross = opts(&tree);
        cross.cross_mounts = true;
        assert!(refusal(drift::scan(&cross, None)).contains("is `/`"));
    }
    keep_if_mounted(t, &[&at, &inner]);
}

#[test]
fn a_protected_directory_reached_by_a_fix_refuses_it_before_anything_is_written() {
    require_root();
    let t = tempdir();
    let root = t.path().join("data");
    treegen::media(&root, 3, 2, 4, spec(500_000), 1).unwrap();
    let system = t.path().join("etc-like");
    std::fs::create_dir(&system).unwrap();
    std::fs::write(system.join("shadow"), "").unwrap();
    let at = root.join("show0002/mnt");
    std::fs::create_dir(&at).unwrap();
    let before = owners(&root);
    {
        let _m = BindMount::read_only(&system, &at);
        let journal = t.path().join("j");
        let mut o = opts(&root);
        o.protect = vec![system.clone()];
        let msg = refusal(fix::apply(&o, &journal));
        assert!(msg.contains(&format!("{} is `{}` (protected)", at.display(), system.display())), "{msg}");
        assert!(!journal.exists(), "refused in the plan: no journal");
        // Given as the root itself.
        o.roots = vec![system.clone()];
        assert!(refusal(fix::apply(&o, &journal)).contains("(protected)"));
    }
    assert_eq!(owners(&root), before, "nothing changed");
    keep_if_mounted(t, &[&at]);
}

fn setid_tree(t: &Path) -> PathBuf {
    let root = t.join("media");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::os::unix::fs::lchown(&root, Some(U), Some(G)).unwrap();
    std::os::unix::fs::lchown(root.join("bin"), Some(U), Some(G)).unwrap();
    for (name, mode) in
        [("bin/suid", 0o4755), ("bin/sgid", 0o2755), ("bin/sgid-nox", 0o2644), ("bin/capped", 0o755), ("plain", 0o644)]
    {
        let p = root.join(name);
        std::fs::write(&p, "").unwrap();
        std::os::unix::fs::lchown(&p, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    // cap_net_bind_service+ep, VFS_CAP_REVISION_2.
    let caps: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rustix::fs::lsetxattr(root.join("bin/capped"), "security.capability", &caps, rustix::fs::XattrFlags::empty())
        .unwrap();
    root
}

fn has_caps(p: &Path) -> bool {
    let mut buf = [0u8; 64];
    rustix::fs::lgetxattr(p, "security.capability", &mut buf[..]).is_ok()
}

#[test]
fn set_id_files_and_capabilities_are_left_alone_unless_allowed_and_reported() {
    require_root();
    let t = tempdir();
    let root = setid_tree(t.path());
    let before = owners(&root);
    // The plan names what chown would clear.
    let mut o = opts(&root);
    o.plan_fix = true;
    let plan = drift::scan(&o, None).unwrap().plan.unwrap();
    let paths = |f: &drift::Flagged| f.samples.iter().map(|x| (x.path.clone(), x.detail.clone())).collect::<Vec<_>>();
    let r = root.display();
    assert_eq!(
        paths(&plan.setid),
        [
            (format!("{r}/bin/sgid"), "mode 2755 (set-group-ID)".into()),
            (format!("{r}/bin/suid"), "mode 4755 (set-user-ID)".into())
        ]
    );
    assert_eq!(paths(&plan.capabilities), [(format!("{r}/bin/capped"), "cap_net_bind_service=ep".into())]);
    assert_eq!((plan.changes, plan.held), (2, 3), "plain and sgid-nox change; {plan:?}");

    // Applied without --allow-setid: those three keep owner, bits and capabilities.
    let j1 = t.path().join("j1");
    let rep = fix::apply(&opts(&root), &j1).unwrap();
    let f = rep.fix.clone().unwrap();
    assert_eq!((f.changed, f.held_setid, f.cleared_setid, f.cleared_capabilities), (2, 3, 0, 0), "{f:?}");
    assert!(!rep.ok(), "drift is left: exit 1");
    let now = owners(&root);
    for n in ["bin/suid", "bin/sgid", "bin/capped"] {
        assert_eq!(now[&root.join(n)], before[&root.join(n)], "{n}");
    }
    assert!(has_caps(&root.join("bin/capped")));
    // chown kept the set-group-ID bit of a file the group cannot execute (mandatory locking).
    assert_eq!(std::fs::metadata(root.join("bin/sgid-nox")).unwrap().permissions().mode() & 0o7777, 0o2644);

    // With --allow-setid: changed, and what chown cleared is reported.
    let j2 = t.path().join("j2");
    let mut o = opts(&root);
    o.allow_setid = true;
    let f = fix::apply(&o, &j2).unwrap().fix.unwrap();
    assert_eq!((f.changed, f.held_setid, f.cleared_setid, f.cleared_capabilities), (3, 0, 2, 1), "{f:?}");
    assert!(f.cleared.iter().any(|c| c.ends_with("bin/suid: mode 4755 -> 0755")), "{:?}", f.cleared);
    assert!(f.cleared.iter().any(|c| c.ends_with("bin/capped: capabilities removed")), "{:?}", f.cleared);
    assert_eq!(
        std::fs::metadata(root.join("bin/suid")).unwrap().permissions().mode() & 0o7777,
        0o755,
        "never re-applied"
    );
    assert!(!has_caps(&root.join("bin/capped")));

    // Both undone, the last first: everything as before.
    assert!(fix::undo(&j2).unwrap().complete());
    assert!(fix::undo(&j1).unwrap().complete());
    assert_eq!(owners(&root), before);
    assert!(has_caps(&root.join("bin/capped")));
}

#[test]
fn hard_links_outside_the_roots_are_left_alone_unless_included() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    std::fs::create_dir_all(root.join("dl")).unwrap();
    std::fs::create_dir_all(t.path().join("torrents")).unwrap();
    for d in [&root, &root.join("dl")] {
        std::os::unix::fs::lchown(d, Some(U), Some(G)).unwrap();
    }
    let mk = |p: &Path| {
        std::fs::write(p, "x").unwrap();
        std::os::unix::fs::lchown(p, Some(0), Some(0)).unwrap();
    };
    // a.mkv is linked from outside the root (an *arr download client's copy); b.mkv and c.mkv
    // are two names inside; d.mkv has its second name excluded.
    mk(&root.join("a.mkv"));
    std::fs::hard_link(root.join("a.mkv"), t.path().join("torrents/a.mkv")).unwrap();
    mk(&root.join("b.mkv"));
    std::fs::hard_link(root.join("b.mkv"), root.join("dl/c.mkv")).unwrap();
    mk(&root.join("d.mkv"));
    std::fs::create_dir(root.join(".Trash-0")).unwrap();
    std::fs::hard_link(root.join("d.mkv"), root.join(".Trash-0/d.mkv")).unwrap();
    mk(&root.join("plain.mkv"));
    let outside_before = owners(&t.path().join("torrents"));
    let mut o = opts(&root);
    o.exclude = vec![".Trash-*".into()];
    o.plan_fix = true;
    let plan = drift::scan(&o, None).unwrap().plan.unwrap();
    let r = root.display();
    assert_eq!(plan.outside_links.count, 2);
    assert_eq!(
        plan.outside_links.samples.iter().map(|x| (x.path.clone(), x.detail.clone())).collect::<Vec<_>>(),
        [(format!("{r}/a.mkv"), "2 links, 1 seen here".into()), (format!("{r}/d.mkv"), "2 links, 1 seen here".into())]
    );
    assert_eq!((plan.changes, plan.held), (3, 2), "b, c (one inode, both names seen) and plain; {plan:?}");

    o.plan_fix = false;
    let j1 = t.path().join("j1");
    let f = fix::apply(&o, &j1).unwrap().fix.unwrap();
    assert_eq!((f.changed, f.held_outside_links, f.skipped), (3, 2, 0), "{f:?}");
    assert_eq!(owners(&t.path().join("torrents")), outside_before, "the name outside is untouched");
    let md = |p: &Path| std::fs::symlink_metadata(p).map(|m| (m.uid(), m.gid())).unwrap();
    assert_eq!(md(&root.join("a.mkv")), (0, 0));
    assert_eq!(md(&root.join("dl/c.mkv")), (U, G));

    // Included: changed, and said so; the name outside changes with it; undo restores it.
    let j2 = t.path().join("j2");
    o.include_outside_links = true;
    let f = fix::apply(&o, &j2).unwrap().fix.unwrap();
    assert_eq!((f.changed, f.held_outside_links, f.changed_outside_links), (2, 0, 2), "{f:?}");
    assert_eq!(md(&t.path().join("torrents/a.mkv")), (U, G));
    assert!(fix::undo(&j2).unwrap().complete());
    assert!(fix::undo(&j1).unwrap().complete());
    assert_eq!(md(&t.path().join("torrents/a.mkv")), (0, 0));
    assert_eq!(md(&root.join("dl/c.mkv")), (0, 0));
}
