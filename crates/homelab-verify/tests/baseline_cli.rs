//! `homelab-verify baseline` and `capture --baseline` from the command line: exit codes, the
//! JSON report against GNU `find -printf`, the plan changing nothing, restore and undo. Needs
//! root (chown), as in CI; fails loudly without it. Chowns only below a fresh scratch directory.

use std::path::Path;

use homelab_test_support::oracle::find_listing;
use homelab_test_support::verify;
use serde_json::Value;

fn require_root() {
    homelab_test_support::require_root("these tests chown files");
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = verify().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn capture_baseline_then_check_restore_and_undo_from_the_cli() {
    require_root();
    let t = homelab_test_support::scratch("baseline-cli");
    let root = t.path().join("appdata");
    treegen::media(&root, 3, 2, 4, treegen::Spec { per_dir_owners: true, ..treegen::Spec::default() }, 1).unwrap();
    let (snap, file) = (t.path().join("snapshot.json"), t.path().join("owners.baseline"));

    // capture --baseline: the snapshot and the baseline, exit 0; --root elsewhere is refused.
    let (rc, _, err) =
        run(&["capture", "--data-root", s(&root), "-o", s(&snap), "--baseline", s(&file), "--scan-seconds", "0"]);
    assert_eq!(rc, 0, "{err}");
    assert!(err.contains("owners and modes of"), "{err}");
    let (rc, _, err) = run(&[
        "capture",
        "--root",
        s(t.path()),
        "--data-root",
        "/appdata",
        "-o",
        "-",
        "--baseline",
        s(&t.path().join("x")),
    ]);
    assert_eq!(rc, 2, "{err}");
    assert!(!t.path().join("x").exists());

    let (rc, out, err) = run(&["baseline", "check", s(&file), "--format", "json", "--no-progress"]);
    assert_eq!(rc, 0, "{out}{err}");
    let good = find_listing(&root);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["same"], good.len() as u64);

    // One season to another owner: exit 1 and exactly the entries find sees changed.
    let season = root.join("show0002/Season 01");
    std::process::Command::new("chown").args(["-R", "4321:4321"]).arg(&season).status().unwrap();
    let broken = find_listing(&root);
    let changed = good.iter().filter(|(p, g)| broken[*p].0 != g.0 || broken[*p].1 != g.1).count();
    let (rc, out, _) = run(&["baseline", "check", s(&file), "--format", "json", "--no-progress"]);
    assert_eq!(rc, 1);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["owner"], changed as u64, "{out}");

    // The plan changes nothing; --apply restores; undo gives back the broken tree.
    let (rc, out, _) = run(&["baseline", "restore", s(&file), "--no-progress"]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("Nothing was changed"), "{out}");
    assert_eq!(find_listing(&root), broken);
    let journal = t.path().join("restore.journal");
    let (rc, out, err) = run(&["baseline", "restore", s(&file), "--apply", "--journal", s(&journal), "--no-progress"]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(find_listing(&root), good);
    let (rc, out, err) = run(&["baseline", "undo", s(&journal)]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(find_listing(&root), broken);

    // A truncated file: exit 2, named offset, nothing changed.
    let bytes = std::fs::read(&file).unwrap();
    let cut = t.path().join("cut.baseline");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (rc, _, err) = run(&["baseline", "restore", s(&cut), "--apply", "--journal", s(&t.path().join("j2"))]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("compressed byte"), "{err}");
    assert_eq!(find_listing(&root), broken);
}
