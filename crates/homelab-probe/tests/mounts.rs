//! The mount probe over fixture sysroots of the runbook's host (`/mnt/PlexStorage` and
//! `/mnt/PlexDrive` by UUID, ext4, nofail; see fixtures/README.md), and `--wait` driven by a
//! simulated clock over a sysroot whose mount table changes while it waits.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use homelab_probe::check::wait::{Clock, wait_for_mounts};
use homelab_probe::check::{self, mounts};
use homelab_probe::{Expectations, Finding, Host, Probe, RemedyKind, Status};
use rstest::rstest;

mod common;
use common::{expectations, find, sysroot};

const STORAGE: &str = "/mnt/PlexStorage";
const DRIVE: &str = "/mnt/PlexDrive";

fn run(root: &str, expect: Option<&str>) -> Vec<Finding> {
    let host = Host::at(sysroot(root)).unwrap();
    mounts::check(&host, &expectations(expect))
}

fn statuses(findings: &[Finding], subject: &str) -> Vec<(String, Status)> {
    findings.iter().filter(|f| f.subject == subject).map(|f| (f.check.clone(), f.status)).collect()
}

fn s(v: &[(&str, Status)]) -> Vec<(String, Status)> {
    v.iter().map(|(c, st)| (c.to_string(), *st)).collect()
}

use Status::{Fail, Pass, Skip, Warn};

const ALL_PASS: &[(&str, Status)] = &[
    ("mount_device", Pass),
    ("mounted", Pass),
    ("mount_source", Pass),
    ("mount_fstype", Pass),
    ("mount_options", Pass),
    ("mount_covered", Pass),
];

#[test]
fn mounted_ok() {
    let f = run("mounts-ok", None);
    for path in ["/", "/boot", STORAGE, DRIVE] {
        assert_eq!(statuses(&f, path), s(ALL_PASS), "{path}");
    }
    assert_eq!(find(&f, "fstab", "/etc/fstab").message, "5 entries: 4 to be mounted at boot, 1 swap, 0 noauto");
    assert_eq!(find(&f, "swap_device", "swap UUID=9d0c7f3e-4a1b-4c2d-8e5f-6a7b8c9d0e1f").status, Pass);
    assert!(f.iter().all(|x| x.status == Pass && x.probe == Probe::Mounts), "{f:#?}");
    assert_eq!(
        find(&f, "mounted", STORAGE).message,
        "/mnt/PlexStorage is mounted: /dev/sda1 (UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10, ext4, rw)"
    );
    assert_eq!(find(&f, "mounted", STORAGE).evidence["fstab_line"], 11);
    assert_eq!(find(&f, "mounted", STORAGE).evidence["origin"], "fstab");
}

#[test]
fn mounted_ok_against_the_expectations_file() {
    let f = run("mounts-ok", Some("plex-mounts.toml"));
    let mut want = vec![("mount_declared", Pass)];
    want.extend_from_slice(ALL_PASS);
    assert_eq!(statuses(&f, STORAGE), s(&want));
    assert_eq!(statuses(&f, DRIVE), s(&want));
    assert_eq!(find(&f, "mount_source", DRIVE).message, "/mnt/PlexDrive is LABEL=Plex Drive");
    assert_eq!(find(&f, "mount_options", DRIVE).message, "/mnt/PlexDrive is rw, with relatime");
    // `nofail` leaves no trace in the mount table: listed as not checkable, not failed.
    assert_eq!(find(&f, "mount_options", STORAGE).evidence["not_checkable"], serde_json::json!(["nofail"]));
    // A removable disk (required = false) that is absent and undeclared only warns.
    assert_eq!(
        statuses(&f, "/mnt/backup"),
        s(&[("mount_declared", Warn), ("mount_device", Warn), ("mounted", Warn), ("shadowed_data", Pass)])
    );
    assert_eq!(
        find(&f, "mount_declared", "/mnt/backup").remedy.as_ref().unwrap().text,
        "fileSystems.\"/mnt/backup\" = {\n  device = \"/dev/disk/by-label/backup\";\n  options = [ \"nofail\" ];\n};"
    );
    // The fstab entries without [[mounts]] (/, /boot) are still checked.
    assert_eq!(statuses(&f, "/boot"), s(ALL_PASS));
}

#[rstest]
#[case::builtin(None)]
#[case::file(Some("plex-mounts.toml"))]
fn missing_nofail_disk_is_still_a_failure(#[case] expect: Option<&str>) {
    let f = run("mounts-missing-disk", expect);
    // fstab names the disk by UUID, the file by label: with the disk gone, whether they are the
    // same cannot be told (a skip, not an accusation).
    let mut want = if expect.is_some() { vec![("mount_declared", Skip)] } else { vec![] };
    want.extend_from_slice(&[("mount_device", Fail), ("mounted", Fail), ("shadowed_data", Pass)]);
    assert_eq!(statuses(&f, DRIVE), s(&want));
    let spec = if expect.is_some() { "LABEL=Plex Drive" } else { "UUID=3b5e8d21-6c0f-4a7e-9d12-8f4a6b2c1e07" };
    let dev = find(&f, "mount_device", DRIVE);
    assert!(dev.message.starts_with(&format!("no block device has {spec}: the disk is missing")), "{}", dev.message);
    let mounted = find(&f, "mounted", DRIVE);
    assert_eq!(
        mounted.message,
        format!("/mnt/PlexDrive is not mounted and {spec} is not present (nofail let the boot go on without it)")
    );
    let r = mounted.remedy.as_ref().unwrap();
    assert_eq!(r.kind, RemedyKind::Manual);
    assert_eq!(r.text, format!("connect the disk with {spec}, then `systemctl start mnt-PlexDrive.mount`"));
    assert_eq!(
        find(&f, "shadowed_data", DRIVE).message,
        "/mnt/PlexDrive does not exist: nothing was written in its place"
    );
    // The other disk is unaffected.
    assert!(statuses(&f, STORAGE).iter().all(|(_, st)| *st == Pass));
}

#[test]
fn wrong_uuid_at_the_path() {
    let f = run("mounts-wrong-uuid", None);
    assert_eq!(
        statuses(&f, STORAGE),
        s(&[
            ("mount_device", Pass),
            ("mounted", Pass),
            ("mount_source", Fail),
            ("mount_fstype", Pass),
            ("mount_options", Pass),
            ("mount_covered", Pass),
        ])
    );
    let src = find(&f, "mount_source", STORAGE);
    assert_eq!(
        src.message,
        "/mnt/PlexStorage is /dev/sdc1 (UUID=e4d3c2b1-a098-4f76-b543-210fedcba987, ext4, rw), expected UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10 (/dev/sda1, not mounted)"
    );
    assert_eq!(src.remedy.as_ref().unwrap().text, "umount /mnt/PlexStorage && systemctl start mnt-PlexStorage.mount");
    // With an expectations file that names another UUID than fstab, fstab is what is wrong.
    let host = Host::at(sysroot("mounts-wrong-uuid")).unwrap();
    let exp = Expectations::from_toml_str(
        "version = 1\n[[mounts]]\npath = \"/mnt/PlexStorage\"\nuuid = \"e4d3c2b1-a098-4f76-b543-210fedcba987\"\n",
        Some(Path::new("x.toml")),
    )
    .unwrap();
    let f = mounts::check(&host, &exp);
    let declared = find(&f, "mount_declared", STORAGE);
    assert_eq!(declared.status, Fail);
    assert_eq!(
        declared.message,
        "/etc/fstab:11 mounts /dev/disk/by-uuid/7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10 at /mnt/PlexStorage, but UUID=e4d3c2b1-a098-4f76-b543-210fedcba987 is expected there"
    );
    assert_eq!(
        declared.remedy.as_ref().unwrap().text,
        "fileSystems.\"/mnt/PlexStorage\" = {\n  device = \"/dev/disk/by-uuid/e4d3c2b1-a098-4f76-b543-210fedcba987\";\n  fsType = \"ext4\";\n  options = [ \"nofail\" ];\n};"
    );
    assert_eq!(find(&f, "mount_source", STORAGE).status, Pass);
}

#[test]
fn read_only() {
    let f = run("mounts-read-only", None);
    let o = find(&f, "mount_options", STORAGE);
    assert_eq!(o.status, Fail);
    assert_eq!(
        o.message,
        "/mnt/PlexStorage is mounted ro, expected rw (the filesystem itself is read-only: remounted so, or switched by the kernel after a filesystem error when errors=remount-ro is set)"
    );
    let r = o.remedy.as_ref().unwrap();
    assert_eq!(r.kind, RemedyKind::Command);
    assert!(r.text.starts_with("mount -o remount,rw /mnt/PlexStorage  # first check `dmesg`"), "{}", r.text);
    assert_eq!(find(&f, "mounted", STORAGE).status, Pass);
    assert_eq!(find(&f, "mount_options", DRIVE).status, Pass);
}

#[rstest]
#[case::builtin(None)]
#[case::file(Some("plex-mounts.toml"))]
fn shadowed_non_empty_mountpoint(#[case] expect: Option<&str>) {
    let f = run("mounts-shadowed", expect);
    let sh = find(&f, "shadowed_data", STORAGE);
    assert_eq!(sh.status, Fail);
    assert_eq!(
        sh.message,
        "/mnt/PlexStorage is not mounted, but the bare directory on the filesystem of / (/dev/nvme0n1p2) holds 7 entries (.plexmatch, Downloads, Movies, Music, Photos, ...): whatever wrote there wrote to the wrong disk, and mounting the disk will hide it"
    );
    assert_eq!(sh.evidence["entries"], 7);
    assert_eq!(sh.evidence["entries_is_lower_bound"], false);
    let r = sh.remedy.as_ref().unwrap();
    assert_eq!(r.kind, RemedyKind::Manual);
    assert!(r.text.contains("mv -T /mnt/PlexStorage /mnt/PlexStorage.shadowed && mkdir /mnt/PlexStorage && systemctl start mnt-PlexStorage.mount"), "{}", r.text);
    assert!(r.text.contains("rsync -a --ignore-existing /mnt/PlexStorage.shadowed/ /mnt/PlexStorage/"));
    assert!(r.text.contains("systemd.services.docker.unitConfig.RequiresMountsFor = [ \"/mnt/PlexStorage\" ];"));
    assert!(!r.text.contains("rm "), "never suggest deleting: {}", r.text);
    // Mounting first would hide the files: the `mounted` remedy says to move them aside first.
    let m = find(&f, "mounted", STORAGE);
    assert_eq!(m.status, Fail);
    assert!(m.remedy.as_ref().unwrap().text.contains("move aside what was written into the bare directory"));
}

#[test]
fn shadow_count_is_a_lower_bound_when_capped() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::create_dir_all(r.join("proc/self")).unwrap();
    std::fs::write(r.join("etc/fstab"), "tmpfs /data tmpfs defaults\n").unwrap();
    std::fs::write(r.join("proc/self/mountinfo"), "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n").unwrap();
    std::fs::create_dir_all(r.join("data")).unwrap();
    for i in 0..mounts::SAMPLE_LIMIT + 5 {
        std::fs::write(r.join(format!("data/f{i}")), "").unwrap();
    }
    let f = mounts::check(&Host::at(r).unwrap(), &Expectations::builtin());
    let sh = find(&f, "shadowed_data", "/data");
    // Which 10000 entries are read first is the filesystem's order (hash order on ext4, newest
    // first on tmpfs): the sample is five of them in byte order, whichever they are.
    let (_, rest) = sh.message.split_once("holds at least 10000 entries (").unwrap_or_else(|| panic!("{}", sh.message));
    let names: Vec<&str> =
        rest.split_once(", ...)").unwrap_or_else(|| panic!("{}", sh.message)).0.split(", ").collect();
    assert_eq!(names.len(), 5, "{}", sh.message);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "not in byte order: {names:?}");
    assert!(names.iter().all(|n| r.join("data").join(n).exists()), "{names:?}");
    assert_eq!(sh.evidence["entries_is_lower_bound"], true);
}

#[test]
fn mount_hidden_by_a_later_mount_on_top() {
    let f = run("mounts-stacked", None);
    let c = find(&f, "mount_covered", STORAGE);
    assert_eq!(c.status, Fail);
    assert_eq!(
        c.message,
        "/dev/sda1 (UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10, ext4, rw) is mounted at /mnt/PlexStorage but hidden: /dev/sdc1 (UUID=e4d3c2b1-a098-4f76-b543-210fedcba987, ext4, rw) was mounted on top of it later"
    );
    assert_eq!(
        c.remedy.as_ref().unwrap().text,
        "umount /mnt/PlexStorage  # removes only the top mount (/dev/sdc1); the one underneath shows again"
    );
    // What processes see at the path is the wrong disk.
    assert_eq!(find(&f, "mount_source", STORAGE).status, Fail);
    assert!(find(&f, "mount_source", STORAGE).message.contains("mounted at /mnt/PlexStorage"));
    assert_eq!(find(&f, "mount_source", STORAGE).remedy, c.remedy, "taking the top mount off is the whole fix");
}

#[test]
fn mount_hidden_by_a_later_mount_on_a_parent() {
    let f = run("mounts-parent-covered", None);
    for path in [STORAGE, DRIVE] {
        assert_eq!(
            statuses(&f, path),
            s(&[("mount_device", Pass), ("mounted", Fail), ("mount_covered", Fail), ("shadowed_data", Pass)]),
            "{path}"
        );
    }
    assert_eq!(
        find(&f, "mounted", STORAGE).message,
        "/mnt/PlexStorage is mounted but hidden: tmpfs was mounted on /mnt after it"
    );
    assert!(
        find(&f, "mount_covered", STORAGE)
            .remedy
            .as_ref()
            .unwrap()
            .text
            .starts_with("`umount /mnt` (the later mount that hides it)")
    );
}

#[test]
fn broken_fstab_line_is_reported_and_the_rest_checked() {
    let f = run("mounts-broken-fstab", None);
    let l5 = find(&f, "fstab_line", "/etc/fstab:5");
    assert_eq!(l5.status, Fail);
    assert!(l5.message.contains("expected at least 3 fields"), "{}", l5.message);
    assert!(l5.remedy.as_ref().unwrap().text.starts_with("fix line 5 of /etc/fstab"));
    let l6 = find(&f, "fstab_line", "/etc/fstab:6");
    assert!(l6.message.contains("a comment must be on a line of its own"), "{}", l6.message);
    assert_eq!(statuses(&f, STORAGE), s(ALL_PASS));
    assert_eq!(statuses(&f, DRIVE), s(ALL_PASS));
    assert!(find(&f, "fstab", "/etc/fstab").message.ends_with("2 bad lines (reported below; the rest is checked)"));
}

#[test]
fn a_sysroot_without_a_mount_table_still_checks_devices() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::copy(sysroot("mounts-ok").join("etc/fstab"), r.join("etc/fstab")).unwrap();
    let f = mounts::check(&Host::at(r).unwrap(), &Expectations::builtin());
    assert_eq!(find(&f, "mount_table", "/proc/self/mountinfo").status, Skip);
    // No /dev/disk and no udev: existence cannot be told, which is a skip, not a failure.
    assert_eq!(statuses(&f, STORAGE), s(&[("mount_device", Skip)]));
}

#[test]
fn no_fstab_and_no_expectations_is_one_skip() {
    let f = run("headless", None);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].check, "fstab");
    assert_eq!(f[0].status, Skip);
    assert_eq!(f[0].message, "no /etc/fstab and no [[mounts]] expectations: no mount to check");
}

#[test]
fn labels_with_blanks_render_as_working_nixos_devices() {
    // NixOS writes `\040` into fstab only for blanks; the udev link name `Plex\x20Drive` passes
    // through, so this device string is one that mounts.
    let host = Host::at(sysroot("mounts-missing-disk")).unwrap();
    let exp = Expectations::from_toml_str(
        "version = 1\n[[mounts]]\npath = \"/mnt/Plex Drive\"\nlabel = \"Plex Drive\"\nfstype = \"ext4\"\n",
        Some(Path::new("x.toml")),
    )
    .unwrap();
    let f = mounts::check(&host, &exp);
    let d = find(&f, "mount_declared", "/mnt/Plex Drive");
    assert_eq!(
        d.remedy.as_ref().unwrap().text,
        "fileSystems.\"/mnt/Plex Drive\" = {\n  device = \"/dev/disk/by-label/Plex\\\\x20Drive\";\n  fsType = \"ext4\";\n};"
    );
    let m = find(&f, "mounted", "/mnt/Plex Drive");
    assert_eq!(m.remedy.as_ref().unwrap().kind, RemedyKind::Nixos);
}

#[test]
fn the_probe_runs_as_part_of_check_run() {
    let host = Host::at(sysroot("mounts-shadowed")).unwrap();
    let f = check::run(&host, &Expectations::builtin());
    assert!(f.iter().any(|x| x.probe == Probe::Mounts && x.check == "shadowed_data" && x.status == Fail));
}

/// A clock that does not sleep; after `mount_after` pauses it "mounts" the disk by writing
/// the mounted table into the sysroot.
struct FakeClock {
    now: Duration,
    pauses: Vec<Duration>,
    mount_after: Option<usize>,
    root: PathBuf,
}

impl Clock for FakeClock {
    fn elapsed(&self) -> Duration {
        self.now
    }

    fn sleep(&mut self, d: Duration) {
        self.now += d;
        self.pauses.push(d);
        if Some(self.pauses.len()) == self.mount_after {
            std::fs::copy(sysroot("mounts-ok").join("proc/self/mountinfo"), self.root.join("proc/self/mountinfo"))
                .unwrap();
            std::fs::copy(
                sysroot("mounts-ok").join("sys/class/block/sdb1/dev"),
                self.root.join("sys/class/block/sdb1/dev"),
            )
            .unwrap();
            std::os::unix::fs::symlink(
                "../../sdb1",
                self.root.join("dev/disk/by-uuid/3b5e8d21-6c0f-4a7e-9d12-8f4a6b2c1e07"),
            )
            .unwrap();
        }
    }
}

/// A copy of the missing-disk sysroot that the fake clock can change.
fn late_disk_sysroot() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("cp")
        .args(["-a", "--"])
        .arg(sysroot("mounts-missing-disk").join("."))
        .arg(t.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::create_dir_all(t.path().join("sys/class/block/sdb1")).unwrap();
    t
}

#[test]
fn wait_rechecks_only_failing_mounts_until_they_pass() {
    let t = late_disk_sysroot();
    let host = Host::at(t.path()).unwrap();
    let exp = Expectations::builtin();
    let mut findings = mounts::check(&host, &exp);
    let before = findings.len();
    assert_eq!(find(&findings, "mounted", DRIVE).status, Fail);
    let mut clock = FakeClock { now: Duration::ZERO, pauses: vec![], mount_after: Some(4), root: t.path().into() };
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    let outcome = wait_for_mounts(&host, &exp, &mut findings, Duration::from_secs(90), &mut clock, |failing, _| {
        seen.push(failing.clone())
    });
    assert!(outcome.ready, "{outcome:?}");
    assert_eq!(outcome.rechecks, 4);
    // Exponential backoff from 250 ms.
    assert_eq!(clock.pauses, [250, 500, 1000, 2000].map(Duration::from_millis));
    // Only the failing mount point was waited for.
    assert!(seen.iter().all(|s| s.iter().eq([DRIVE])), "{seen:?}");
    assert_eq!(statuses(&findings, DRIVE), s(ALL_PASS));
    let w = find(&findings, "mount_wait", "mount readiness");
    assert_eq!(w.status, Pass);
    assert_eq!(w.message, "every mount check passed after 3.8 s (4 re-checks)");
    // The rest of the report is untouched, in place.
    assert_eq!(findings.len(), before - 3 + ALL_PASS.len() + 1);
    assert_eq!(findings[0].check, "fstab");
}

#[test]
fn wait_gives_up_at_the_deadline_with_bounded_polling() {
    let t = late_disk_sysroot();
    let host = Host::at(t.path()).unwrap();
    let exp = Expectations::builtin();
    let mut findings = mounts::check(&host, &exp);
    let mut clock = FakeClock { now: Duration::ZERO, pauses: vec![], mount_after: None, root: t.path().into() };
    let outcome = wait_for_mounts(&host, &exp, &mut findings, Duration::from_secs(20), &mut clock, |_, _| {});
    assert!(!outcome.ready);
    assert_eq!(outcome.failing, [DRIVE]);
    assert_eq!(clock.now, Duration::from_secs(20), "never sleeps past the deadline");
    assert!(clock.pauses.iter().all(|p| *p <= Duration::from_secs(4)), "pauses are capped: {:?}", clock.pauses);
    // 250 ms, 500 ms, 1 s, 2 s, then 4 s until the last pause, cut at the deadline.
    assert_eq!(clock.pauses.len(), 9, "{:?}", clock.pauses);
    let w = find(&findings, "mount_wait", "mount readiness");
    assert_eq!(w.status, Fail);
    assert_eq!(w.message, "still failing after waiting 20.0 s of 20.0 s (9 re-checks): /mnt/PlexDrive");
    assert_eq!(
        w.remedy.as_ref().unwrap().text,
        "systemctl status mnt-PlexDrive.mount; journalctl -b -u mnt-PlexDrive.mount"
    );
}

#[test]
fn wait_without_failures_does_not_pause() {
    let host = Host::at(sysroot("mounts-ok")).unwrap();
    let exp = Expectations::builtin();
    let mut findings = mounts::check(&host, &exp);
    let mut clock = FakeClock { now: Duration::ZERO, pauses: vec![], mount_after: None, root: PathBuf::new() };
    let outcome = wait_for_mounts(&host, &exp, &mut findings, Duration::from_secs(20), &mut clock, |_, _| {});
    assert!(outcome.ready && clock.pauses.is_empty());
    assert_eq!(find(&findings, "mount_wait", "mount readiness").message, "every mount check passed at the first try");
}

/// Evaluates NixOS remedy snippets (`attr.path = value;` lines) with the real evaluator.
fn nix_eval(snippet: &str) -> serde_json::Value {
    homelab_test_support::nix::eval_in(&std::env::temp_dir(), &format!("{{ {snippet} }}"))
        .unwrap_or_else(|e| panic!("{snippet}\n{e}"))
}

#[test]
fn nixos_remedies_evaluate_to_what_was_meant() {
    let host = Host::at(sysroot("mounts-missing-disk")).unwrap();
    let exp = Expectations::from_toml_str(
        "version = 1\n[[mounts]]\npath = \"/mnt/Plex Drive\"\nlabel = \"Plex Drive\"\nfstype = \"ext4\"\noptions = [\"rw\", \"noatime\"]\nrequired = false\n\n[[mounts]]\npath = \"/srv/${x}\\\"q\"\nuuid = \"7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10\"\n",
        Some(Path::new("x.toml")),
    )
    .unwrap();
    let f = mounts::check(&host, &exp);
    let r = find(&f, "mount_declared", "/mnt/Plex Drive").remedy.as_ref().unwrap();
    let v = nix_eval(&r.text);
    let fs = &v["fileSystems"]["/mnt/Plex Drive"];
    // The udev link name, which NixOS writes into fstab unchanged (it escapes only blanks).
    assert_eq!(fs["device"], "/dev/disk/by-label/Plex\\x20Drive");
    assert_eq!(fs["fsType"], "ext4");
    assert_eq!(fs["options"], serde_json::json!(["noatime", "nofail"]));
    let r = find(&f, "mount_declared", "/srv/${x}\"q").remedy.as_ref().unwrap();
    let v = nix_eval(&r.text);
    assert_eq!(v["fileSystems"]["/srv/${x}\"q"]["device"], "/dev/disk/by-uuid/7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10");
    let sh = run("mounts-shadowed", None);
    let text = &find(&sh, "shadowed_data", STORAGE).remedy.as_ref().unwrap().text;
    let line = text.lines().last().unwrap();
    let nix = line.split_once(": ").unwrap().1;
    let v = nix_eval(nix);
    assert_eq!(v["systemd"]["services"]["docker"]["unitConfig"]["RequiresMountsFor"], serde_json::json!([STORAGE]));
}

#[test]
fn mount_unit_names_agree_with_systemd_escape() {
    let paths =
        ["/mnt/PlexStorage", "/mnt/Plex Drive", "/srv", "/", "/srv/a-b", "/mnt/.hidden", "/mnt/ü", "/a\\b", "/x:y_z.w"];
    let out = std::process::Command::new("systemd-escape")
        .args(["--path", "--suffix=mount", "--"])
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("cannot run systemd-escape ({e}): install systemd (scripts/setup-debian --test)"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<String> = String::from_utf8(out.stdout).unwrap().split_whitespace().map(str::to_owned).collect();
    let ours: Vec<String> = paths.iter().map(|p| homelab_probe::systemd::mount_unit(p)).collect();
    assert_eq!(ours, theirs);
}

/// A sysroot with `fstab` and a mount table only.
fn tables_sysroot(fstab: &str, mountinfo: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc")).unwrap();
    std::fs::create_dir_all(t.path().join("proc/self")).unwrap();
    std::fs::write(t.path().join("etc/fstab"), fstab).unwrap();
    std::fs::write(t.path().join("proc/self/mountinfo"), mountinfo).unwrap();
    t
}

#[test]
fn automount_points_are_not_triggered() {
    let fstab = "tmpfs /efi tmpfs x-systemd.automount,noatime 0 0\n";
    let base = "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n56 22 0:56 / /efi rw,relatime shared:36 - autofs systemd-1 rw,fd=41,pgrp=1,timeout=0,minproto=5,maxproto=5,direct\n";
    let t = tables_sysroot(fstab, base);
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    assert_eq!(
        statuses(&f, "/efi"),
        s(&[
            ("mounted", Pass),
            ("mount_source", Skip),
            ("mount_fstype", Skip),
            ("mount_options", Skip),
            ("mount_covered", Pass)
        ])
    );
    assert_eq!(
        find(&f, "mount_source", "/efi").message,
        "not mounted until first access (automount); `ls /efi` mounts it"
    );
    // Once accessed, the filesystem sits on top of the trigger: checked, and not "covered".
    let t = tables_sysroot(fstab, &format!("{base}90 56 0:90 / /efi rw,noatime - tmpfs tmpfs rw\n"));
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    assert!(statuses(&f, "/efi").iter().all(|(_, st)| *st == Pass), "{f:#?}");
}

#[test]
fn bind_mounts_and_network_mounts() {
    let fstab = "/srv/data /export/data none bind,nofail 0 0\n/srv/gone /export/gone none bind 0 0\nnas:/export /mnt/nfs nfs4 _netdev 0 0\n";
    let mi = "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n40 22 8:17 / /srv rw - ext4 /dev/sdb1 rw\n41 22 8:17 /data /export/data rw - ext4 /dev/sdb1 rw\n55 22 0:55 / /mnt/nfs rw - nfs4 nas:/export rw,vers=4.2\n";
    let t = tables_sysroot(fstab, mi);
    std::fs::create_dir_all(t.path().join("srv/data")).unwrap();
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    assert_eq!(find(&f, "bind_source", "/export/data").status, Pass);
    assert_eq!(find(&f, "mount_source", "/export/data").message, "/export/data shows /srv/data (bind mount)");
    assert_eq!(find(&f, "bind_source", "/export/gone").status, Fail);
    assert_eq!(find(&f, "mounted", "/export/gone").status, Fail);
    assert_eq!(find(&f, "mount_source", "/mnt/nfs").status, Pass);
    assert_eq!(find(&f, "mount_fstype", "/mnt/nfs").status, Pass);
    // A bind of another directory at the path is caught.
    let t = tables_sysroot(fstab, &mi.replace("/data /export/data", "/other /export/data"));
    std::fs::create_dir_all(t.path().join("srv/data")).unwrap();
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    assert_eq!(find(&f, "mount_source", "/export/data").status, Fail);
}

#[test]
fn a_relative_mount_point_is_reported_not_checked() {
    let t = tables_sysroot("/dev/sdb1 data ext4 defaults 0 2\n", "22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n");
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    let l = find(&f, "fstab_line", "/etc/fstab:1");
    assert_eq!(l.status, Warn);
    assert_eq!(l.message, "mount point \"data\" is not an absolute path: systemd ignores this entry");
    assert!(!f.iter().any(|x| x.subject == "data"), "{f:#?}");
}

/// A copy of `mounts-ok` with `fstab_extra` appended to its fstab and `mountinfo_extra` to its
/// mount table.
fn ok_host_with(fstab_extra: &str, mountinfo_extra: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let out =
        std::process::Command::new("cp").arg("-a").arg(sysroot("mounts-ok").join(".")).arg(t.path()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    for (file, extra) in [("etc/fstab", fstab_extra), ("proc/self/mountinfo", mountinfo_extra)] {
        let p = t.path().join(file);
        let text = std::fs::read_to_string(&p).unwrap() + extra;
        std::fs::write(p, text).unwrap();
    }
    t
}

#[test]
fn nixos_read_only_store_bind_is_intended() {
    // A NixOS test VM: qemu-vm.nix declares the store (9p from the host) read-write in fstab,
    // and stage 2 binds it read-only onto itself (boot.readOnlyNixStore).
    let t = ok_host_with(
        "nix-store /nix/store 9p trans=virtio,version=9p2000.L,msize=16384,x-systemd.requires=modprobe@9pnet_virtio.service,cache=loose 0 0\n",
        "50 22 0:40 / /nix/store rw,relatime shared:7 - 9p nix-store rw,cache=loose,access=client,trans=virtio\n\
         51 50 0:40 / /nix/store ro,relatime shared:7 - 9p nix-store rw,cache=loose,access=client,trans=virtio\n",
    );
    // The fixture's own /nix/store line is a real NixOS host's bind from the root filesystem;
    // a test VM has the 9p store there instead.
    let mi = t.path().join("proc/self/mountinfo");
    let text: String = std::fs::read_to_string(&mi)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("28 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&mi, text).unwrap();
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    let store: Vec<(String, Status)> = statuses(&f, "/nix/store");
    assert!(
        store.iter().all(|(_, st)| *st == Pass),
        "{:#?}",
        f.iter().filter(|f| f.subject == "/nix/store").collect::<Vec<_>>()
    );
    assert_eq!(
        find(&f, "mount_options", "/nix/store").message,
        "/nix/store is rw, and read-only through a bind of itself on top, as NixOS makes the store read-only"
    );
    assert!(find(&f, "mount_covered", "/nix/store").message.starts_with("only a bind of /nix/store onto itself"));
}

#[test]
fn read_only_self_bind_on_a_data_disk_warns() {
    // The same stack on a data disk: nothing is hidden, but nothing can write there either.
    let t = tempfile::tempdir().unwrap();
    let out =
        std::process::Command::new("cp").arg("-a").arg(sysroot("mounts-ok").join(".")).arg(t.path()).output().unwrap();
    assert!(out.status.success());
    let mi = t.path().join("proc/self/mountinfo");
    std::fs::write(
        &mi,
        std::fs::read_to_string(&mi).unwrap()
            + "60 41 8:1 / /mnt/PlexStorage ro,relatime shared:31 - ext4 /dev/sda1 rw\n",
    )
    .unwrap();
    let f = mounts::check(&Host::at(t.path()).unwrap(), &Expectations::builtin());
    let o = find(&f, "mount_options", STORAGE);
    assert_eq!(o.status, Warn, "{o:#?}");
    assert!(o.message.contains("a read-only bind of itself is mounted on top"), "{}", o.message);
    assert_eq!(find(&f, "mount_covered", STORAGE).status, Pass);
    // A different filesystem on top is still a cover, not a self-bind.
    let t2 = ok_host_with("", "61 41 8:33 / /mnt/PlexStorage rw,relatime shared:40 - ext4 /dev/sdc1 rw\n");
    let f2 = mounts::check(&Host::at(t2.path()).unwrap(), &Expectations::builtin());
    assert_eq!(find(&f2, "mount_covered", STORAGE).status, Fail);
}

#[test]
fn a_uuid_that_differs_only_in_letter_case_is_named() {
    // vfat and NTFS UUIDs are upper case (ABCD-1234), ext4's lower case; a hand-written
    // expectation in the other case matches no disk, and the finding says why.
    let host = Host::at(sysroot("mounts-ok")).unwrap();
    let exp = Expectations::from_toml_str(
        "version = 1\n[[mounts]]\npath = \"/mnt/PlexStorage\"\nuuid = \"7C1F0B7E-2D4A-4F61-9A53-3C5F2D1E9B10\"\n",
        Some(Path::new("x.toml")),
    )
    .unwrap();
    let f = mounts::check(&host, &exp);
    let d = find(&f, "mount_device", STORAGE);
    assert_eq!(d.status, Fail);
    assert!(
        d.message.contains(
            "but /dev/sda1 has UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10: the value differs only in letter case"
        ),
        "{}",
        d.message
    );
    assert_eq!(
        d.remedy.as_ref().unwrap().text,
        "write UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10 exactly as `lsblk -f` shows it, in the expectations and in fileSystems/fstab"
    );
}
