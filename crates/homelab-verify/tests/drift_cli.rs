//! `homelab-verify drift`: exit codes, refusals, output formats, the fix journal surviving a
//! kill, running with few file descriptors and as an unprivileged user. Needs root (chown,
//! setpriv), as in CI; fails loudly without it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use homelab_test_support::oracle::{self, owners};
use homelab_test_support::verify;
use serde_json::Value;

const U: u32 = 1000;
const G: u32 = 110;

fn require_root() {
    homelab_test_support::require_root("these tests chown files and switch users");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("drift-cli").tempdir_in("/var/tmp").unwrap()
}

fn spec(drift_ppm: u32) -> treegen::Spec {
    treegen::Spec { owner: (U, G), drift_ppm, seed: 3, per_dir_owners: false }
}

fn drift_args(root: &Path) -> Vec<String> {
    vec!["drift".into(), root.to_str().unwrap().into(), "--uid".into(), U.to_string(), "--gid".into(), G.to_string()]
}

fn find0(root: &Path) -> BTreeSet<PathBuf> {
    oracle::find_offending(root, (U, G), true)
}

#[test]
fn json_report_paths0_and_exit_codes() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    treegen::media(&root, 10, 3, 10, spec(50_000), 1).unwrap();
    let root = root.canonicalize().unwrap();

    let out = verify().args(drift_args(&root)).args(["--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "drift found: exit 1");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "by_owner",
            "by_top_level",
            "cross_mounts",
            "elapsed_seconds",
            "error_samples",
            "errors",
            "exclude",
            "expected",
            "offending",
            "roots",
            "stats",
            "threads",
            "vanished"
        ]
    );
    assert_eq!(r["expected"], serde_json::json!({"uid": U, "gid": G}));
    assert_eq!(r["stats"]["entries"], 1 + 10 + 30 + 300);
    assert!(out.stderr.is_empty(), "no progress bar when stderr is not a terminal");

    let p0 = verify().args(drift_args(&root)).args(["--format", "paths0"]).output().unwrap();
    assert_eq!(p0.status.code(), Some(1));
    let ours = oracle::split0(&p0.stdout);
    assert_eq!(ours, find0(&root));
    assert_eq!(ours.len() as u64, r["offending"].as_u64().unwrap());

    // Clean tree: exit 0.
    let clean = t.path().join("clean");
    treegen::media(&clean, 2, 2, 2, spec(0), 1).unwrap();
    let out = verify().args(drift_args(&clean)).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASS  every entry is owned by 1000:110"));
}

#[test]
fn refusals_are_exit_code_2_and_change_nothing() {
    require_root();
    let t = tempdir();
    let root = t.path().join("data");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink(&root, t.path().join("link")).unwrap();
    let link = t.path().join("link");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["drift".into(), "/".into(), "--uid=1".into(), "--gid=1".into()], "refusing to scan or fix `/`"),
        (vec!["drift".into(), root.to_str().unwrap().into(), "--uid=1".into()], "--gid"),
        (vec!["drift".into(), root.to_str().unwrap().into()], "--uid"),
        // undo prints human or JSON; `paths0` belongs to the scan only.
        (vec!["drift".into(), "undo".into(), "x.journal".into(), "--format=paths0".into()], "invalid value 'paths0'"),
        (
            vec![
                "drift".into(),
                link.to_str().unwrap().into(),
                "--uid=1".into(),
                "--gid=1".into(),
                "--fix".into(),
                "--apply".into(),
            ],
            "symbolic link",
        ),
        (
            vec![
                "drift".into(),
                format!("{}/../data", root.display()),
                "--uid=1".into(),
                "--gid=1".into(),
                "--fix".into(),
                "--apply".into(),
            ],
            "`..`",
        ),
        (
            vec!["drift".into(), root.to_str().unwrap().into(), "--uid=1".into(), "--gid=1".into(), "--apply".into()],
            "--fix",
        ),
        (vec!["drift".into(), "undo".into(), "/nonexistent/journal".into()], "cannot open the journal"),
        (
            vec![
                "drift".into(),
                root.to_str().unwrap().into(),
                "--uid=1".into(),
                "--gid=1".into(),
                "--exclude=[".into(),
            ],
            "exclude",
        ),
    ];
    for (args, want) in cases {
        let out = verify().current_dir(t.path()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // No journal was written by a refused fix.
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
    // An existing journal is never overwritten.
    let j = t.path().join("j");
    std::fs::write(&j, "keep").unwrap();
    let out = verify().args(drift_args(&root)).args(["--fix", "--apply", "--journal"]).arg(&j).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&j).unwrap(), "keep");
}

#[test]
fn plan_changes_nothing_apply_and_undo_round_trip() {
    require_root();
    let t = tempdir();
    let root = t.path().join("edge");
    treegen::edge(&root, 100, spec(300_000)).unwrap();
    let before = owners(&root);
    let out = verify().args(drift_args(&root)).arg("--fix").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Nothing was changed. Add --apply"), "{text}");
    assert_eq!(owners(&root), before, "--fix alone changes nothing");

    let j = t.path().join("fix.journal");
    let out = verify().args(drift_args(&root)).args(["--fix", "--apply", "--journal"]).arg(&j).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("undo with: homelab-verify drift undo"));
    assert_eq!(verify().args(drift_args(&root)).output().unwrap().status.code(), Some(0), "clean after the fix");

    let out = verify().args(["drift", "undo"]).arg(&j).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(owners(&root), before);
}

#[test]
fn a_fix_killed_mid_apply_can_be_undone() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    // Every entry drifted, in 1201 directories: one journal sync per directory makes the
    // apply last long enough to be killed in the middle.
    treegen::media(&root, 200, 5, 3, spec(1_000_000), 2).unwrap();
    let before = owners(&root);
    let total = before.len();
    let j = t.path().join("fix.journal");
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_homelab-verify"))
        .args(drift_args(&root))
        .args(["--fix", "--apply", "--journal"])
        .arg(&j)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let lines = std::fs::read(&j).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0);
        if lines > 50 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed by the signal, not finished: {status:?}");
    let records = std::fs::read_to_string(&j).unwrap().lines().count() - 1;
    assert!(records > 0 && records < total, "interrupted in the middle: {records} of {total}");
    let changed = owners(&root).iter().filter(|(p, o)| before[*p] != **o).count();
    assert!(changed <= records, "every change has its record: {changed} changed, {records} records");

    let out = verify().args(["drift", "undo", "--format", "json"]).arg(&j).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let u: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u["restored"].as_u64().unwrap() as usize, changed);
    assert_eq!(owners(&root), before, "every owner is back after an interrupted fix");
}

#[test]
fn deep_tree_with_64_descriptors_equals_find() {
    require_root();
    let t = tempdir();
    let root = t.path().join("deep");
    treegen::deep(&root, 3000, 1, spec(30_000)).unwrap();
    let root = root.canonicalize().unwrap();
    let out = StdCommand::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_homelab-verify"))
        .args(drift_args(&root))
        .args(["--format", "paths0"])
        .output()
        .expect("prlimit (util-linux) must be installed");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(oracle::split0(&out.stdout), find0(&root));
    let out = StdCommand::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_homelab-verify"))
        .args(drift_args(&root))
        .args(["--format", "json"])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["stats"]["entries"], 1 + 3000 * 4);
}

#[test]
fn unreadable_directory_as_another_user_is_reported_and_exit_1() {
    require_root();
    let t = tempdir();
    std::fs::set_permissions(t.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let root = t.path().join("edge");
    treegen::edge(&root, 100, spec(0)).unwrap();
    // As nobody every directory is readable (0755) except `locked` (0700, owned by root).
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_homelab-verify"))
        .args(drift_args(&root))
        .args(["--format", "json"])
        .output()
        .expect("setpriv (util-linux) must be installed");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["errors"], 1, "{r}");
    assert_eq!(r["error_samples"][0]["path"], root.join("locked").to_str().unwrap());
    assert_eq!(r["error_samples"][0]["op"], "open");
    assert!(r["error_samples"][0]["error"].as_str().unwrap().contains("Permission denied"));
    // The locked directory itself (0:0) is still reported: only its contents are unknown.
    assert_eq!(r["offending"], 1);
    // find, as the same user, agrees on what it could see.
    let out = StdCommand::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "find"])
        .arg(&root)
        .args(["-xdev", "(", "!", "-uid", "1000", "-o", "!", "-gid", "110", ")", "-print"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), root.join("locked").to_str().unwrap());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
}

#[test]
fn check_runs_bounded_drift_sections() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    treegen::media(&root, 5, 2, 10, spec(100_000), 1).unwrap();
    let exp = t.path().join("homelab-probe.toml");
    std::fs::write(
        &exp,
        format!(
            "version = 1\n\n[[drift]]\nroot = \"{}\"\nuid = 1000\ngid = 110\n\n[[drift]]\nroot = \"{}\"\nuid = 1000\ngid = 110\nmax_entries = 10\n",
            root.display(),
            root.display()
        ),
    )
    .unwrap();
    let out = verify().args(["check", "--format", "json", "--expect"]).arg(&exp).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let drift: Vec<&Value> = r["findings"].as_array().unwrap().iter().filter(|f| f["probe"] == "drift").collect();
    assert_eq!(drift[0]["check"], "drift_owner");
    assert_eq!(drift[0]["status"], "fail");
    assert!(drift[0]["remedy"]["text"].as_str().unwrap().starts_with("homelab-verify drift "));
    assert!(drift.iter().any(|f| f["check"] == "drift_bounded" && f["status"] == "warn"));
}

/// Whether `p` is the root of a mount (a bind mount the test made).
fn is_mount_root(p: &Path) -> bool {
    rustix::fs::statx(rustix::fs::CWD, p, rustix::fs::AtFlags::empty(), rustix::fs::StatxFlags::empty())
        .is_ok_and(|s| s.stx_attributes.contains(rustix::fs::StatxAttributes::MOUNT_ROOT))
}

#[test]
fn a_read_only_bind_mount_of_the_root_is_refused_exit_2_dry_run_only() {
    require_root();
    let t = tempdir();
    let at = t.path().join("bindroot");
    std::fs::create_dir(&at).unwrap();
    assert!(at.starts_with("/var/tmp/"));
    // A [[drift]] root that holds it, as a container's data directory holding the host's `/`.
    let tree = t.path().join("data");
    std::fs::create_dir(&tree).unwrap();
    std::fs::rename(&at, tree.join("host")).unwrap();
    let at = tree.join("host");
    let exp = t.path().join("homelab-probe.toml");
    std::fs::write(&exp, format!("version = 1\n\n[[drift]]\nroot = \"{}\"\nuid = 0\ngid = 0\n", tree.display()))
        .unwrap();
    let st = StdCommand::new("mount").args(["--bind", "-o", "ro", "/"]).arg(&at).status().expect("mount (util-linux)");
    assert!(st.success(), "mount --bind -o ro / failed: these tests need root with CAP_SYS_ADMIN, as in CI");
    let ro = rustix::fs::statvfs(&at).map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    // Only dry runs: the plan (--fix without --apply) and a scan, never a change.
    let outputs: Vec<_> = if ro.unwrap_or(false) {
        [vec!["--fix"], vec![]]
            .iter()
            .map(|extra| {
                verify().args(["drift"]).arg(&at).args(["--uid", "0", "--gid", "0"]).args(extra).output().unwrap()
            })
            .collect()
    } else {
        Vec::new()
    };
    let check = ro
        .unwrap_or(false)
        .then(|| verify().args(["check", "--format", "json", "--expect"]).arg(&exp).output().unwrap());
    let _ = StdCommand::new("umount").arg(&at).status();
    if is_mount_root(&at) {
        let _ = StdCommand::new("umount").arg("-l").arg(&at).status();
    }
    if is_mount_root(&at) {
        let kept = t.keep();
        panic!("{at:?} is still mounted; {kept:?} is left in place");
    }
    assert_eq!(ro, Ok(true), "the bind mount was not read-only: nothing was run");
    for out in outputs {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("{} is `/`: refusing to scan or fix a system directory", at.display())), "{err}");
        assert!(out.stdout.is_empty(), "nothing planned: {}", String::from_utf8_lossy(&out.stdout));
    }
    let out = check.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = r["findings"].as_array().unwrap().iter().find(|f| f["probe"] == "drift").unwrap();
    assert_eq!((f["check"].as_str(), f["status"].as_str()), (Some("drift_root"), Some("fail")), "{r}");
    assert!(f["message"].as_str().unwrap().starts_with(&format!("{} is `/`", at.display())), "{f}");
}

#[test]
fn the_plan_lists_set_id_files_capabilities_and_outside_links() {
    require_root();
    let t = tempdir();
    let root = t.path().join("media");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(t.path().join("torrents")).unwrap();
    for d in [&root, &root.join("bin")] {
        std::os::unix::fs::lchown(d, Some(U), Some(G)).unwrap();
    }
    for (name, mode) in [("bin/hook", 0o4755), ("bin/capped", 0o755), ("a.mkv", 0o644)] {
        let p = root.join(name);
        std::fs::write(&p, "").unwrap();
        std::os::unix::fs::lchown(&p, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let caps: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    rustix::fs::lsetxattr(root.join("bin/capped"), "security.capability", &caps, rustix::fs::XattrFlags::empty())
        .unwrap();
    std::fs::hard_link(root.join("a.mkv"), t.path().join("torrents/a.mkv")).unwrap();
    let before = owners(&root);
    let out = verify().args(drift_args(&root)).arg("--fix").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let r = root.display();
    for want in [
        "set-id files: 1, left alone: chown would clear the set-id bits".to_owned(),
        format!("    {r}/bin/hook  (mode 4755 (set-user-ID))"),
        "files with capabilities: 1, left alone: chown would remove the capabilities".to_owned(),
        format!("    {r}/bin/capped  (cap_net_bind_service=ep)"),
        "files with hard links outside: 1, left alone".to_owned(),
        format!("    {r}/a.mkv  (2 links, 1 seen here)"),
        "plan: change the owner of 0 of these 3 entries to 1000:110".to_owned(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
    let out = verify().args(drift_args(&root)).args(["--fix", "--format", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plan"]["changes"], 0);
    assert_eq!(v["plan"]["held"], 3);
    assert_eq!(v["plan"]["setid"]["samples"][0]["detail"], "mode 4755 (set-user-ID)");
    // The flags need --fix.
    let out = verify().args(drift_args(&root)).arg("--allow-setid").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Applied with both flags: all three change, and what chown cleared is said.
    let j = t.path().join("j");
    let out = verify()
        .args(drift_args(&root))
        .args(["--fix", "--apply", "--allow-setid", "--include-outside-links", "--journal"])
        .arg(&j)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("chown cleared set-id bits: 1, capabilities: 1 (never re-applied"), "{text}");
    assert!(text.contains(&format!("    {r}/bin/hook: mode 4755 -> 0755")), "{text}");
    assert!(text.contains("changed with hard links outside the roots: 1 (those names changed too)"), "{text}");
    let out = verify().args(["drift", "undo"]).arg(&j).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(owners(&root), before);
}
