//! `homelab-verify baseline` and `capture --baseline` from the command line: exit codes, the
//! JSON report against GNU `find -printf`, the plan changing nothing, restore and undo; the
//! baseline `capture` records planned into `[[baseline]]` and checked in a new host's sysroot
//! (checksum by `sha256sum`). Needs root (chown), as in CI; fails loudly without it. Chowns
//! only below a fresh scratch directory.

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

/// The baseline findings of `check --root SYSROOT --expect FILE --format json` (the sysroot has
/// no /etc, so the other probes fail; only the `[[baseline]]` part is looked at).
fn baseline_findings(sysroot: &Path, expect: &Path) -> Vec<Value> {
    let (_, out, err) = run(&["check", "--root", s(sysroot), "--expect", s(expect), "--format", "json"]);
    let r: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"].as_str().unwrap().starts_with("baseline_"))
        .cloned()
        .collect()
}

#[test]
fn capture_baseline_is_planned_and_checked_on_the_new_host() {
    require_root();
    let t = homelab_test_support::scratch("baseline-plan");
    let root = t.path().join("appdata");
    treegen::media(&root, 2, 2, 3, treegen::Spec { per_dir_owners: true, ..treegen::Spec::default() }, 7).unwrap();
    let (snap, file) = (t.path().join("snapshot.json"), t.path().join("owners.baseline"));
    let (rc, _, err) =
        run(&["capture", "--data-root", s(&root), "-o", s(&snap), "--baseline", s(&file), "--scan-seconds", "0"]);
    assert_eq!(rc, 0, "{err}");

    // The snapshot records the file, its roots and count, and its SHA-256 as sha256sum prints it.
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&snap).unwrap()).unwrap();
    let b = &v["baseline"];
    let sum = std::process::Command::new("sha256sum").arg(&file).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(Some(sum.split_whitespace().next().unwrap()), b["sha256"].as_str(), "{b}");
    assert_eq!(b["file"].as_str(), Some(s(&file)));
    assert_eq!(b["roots"], serde_json::json!([s(&root)]));
    assert_eq!(b["entries"], find_listing(&root).len() as u64);
    assert_eq!(b["bytes"], std::fs::metadata(&file).unwrap().len());
    assert_eq!(b["complete"], true);
    assert!(err.contains(&format!("ownership baseline {}:", s(&file))), "{err}");

    // plan: a [[baseline]] section at the fixed place, and the steps to put the file there.
    let plan = t.path().join("plan");
    let (rc, _, err) = run(&["plan", s(&snap), "--out", s(&plan)]);
    assert_eq!(rc, 0, "{err}");
    let expect = plan.join("homelab-probe.toml");
    let e = homelab_probe::Expectations::load(&expect).unwrap();
    let place = "/var/lib/homelab-probe/owners.baseline";
    assert_eq!(e.baseline.iter().map(|b| b.file.as_str()).collect::<Vec<_>>(), [place]);
    let m = std::fs::read_to_string(plan.join("MIGRATION.md")).unwrap();
    let sha = b["sha256"].as_str().unwrap();
    assert!(m.contains(&format!("`install -D -m 0600 owners.baseline {place}`")), "{m}");
    assert!(m.contains(&format!("`echo '{sha}  {place}' | sha256sum --check`")), "{m}");

    // The new host, a sysroot: the data copied with its owners, the baseline not yet.
    let new = t.path().join("newhost");
    let data = new.join(root.strip_prefix("/").unwrap());
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    assert!(std::process::Command::new("cp").arg("-a").arg(&root).arg(&data).status().unwrap().success());
    let f = baseline_findings(&new, &expect);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0]["check"].as_str(), f[0]["status"].as_str()), (Some("baseline_file"), Some("fail")), "{f:#?}");
    assert_eq!(f[0]["subject"].as_str(), Some(place));

    // Installed as MIGRATION.md says (under the sysroot), the checksum holds and the owners pass.
    let installed = new.join(place.strip_prefix("/").unwrap());
    let out =
        std::process::Command::new("install").args(["-D", "-m", "0600"]).arg(&file).arg(&installed).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut child = std::process::Command::new("sha256sum")
        .arg("--check")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), format!("{sha}  {}\n", s(&installed)).as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "sha256sum --check: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}: OK\n", s(&installed)));
    let f = baseline_findings(&new, &expect);
    assert_eq!((f[0]["check"].as_str(), f[0]["status"].as_str()), (Some("baseline_owner"), Some("pass")), "{f:#?}");
    assert_eq!(f[0]["evidence"]["same"], find_listing(&data).len() as u64, "{f:#?}");

    // A copy that lost one owner fails with the count; the data not there is a missing root.
    let one = find_listing(&data).into_keys().find(|p| p.to_string_lossy().contains("show0001/")).unwrap();
    std::os::unix::fs::lchown(&one, Some(4321), Some(4321)).unwrap();
    let f = baseline_findings(&new, &expect);
    assert_eq!((f[0]["check"].as_str(), f[0]["status"].as_str()), (Some("baseline_owner"), Some("fail")), "{f:#?}");
    assert_eq!(f[0]["evidence"]["owner"], 1, "{f:#?}");
    std::fs::rename(&data, data.with_file_name("appdata.elsewhere")).unwrap();
    let f = baseline_findings(&new, &expect);
    assert_eq!((f[0]["check"].as_str(), f[0]["status"].as_str()), (Some("baseline_root"), Some("fail")), "{f:#?}");
    assert_eq!(f[0]["subject"].as_str(), Some(s(&root)));
}
