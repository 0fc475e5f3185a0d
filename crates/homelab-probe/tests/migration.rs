//! The migration round trip: capture a fixture "old host" (Pop!_OS: render gid 110, Plex with
//! PUID 1000 / PGID 110, two data disks by UUID, an Intel iGPU), plan, then `check` the
//! generated expectations against fixture "new hosts": one that matches, one where render kept
//! NixOS's gid 303, one with a data disk missing, one without the VA-API driver. Every
//! generated module must parse with the real Nix parser.

use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_probe::capture::{self, CaptureOptions};
use homelab_probe::model::inventory::GpuVendor;
use homelab_probe::model::snapshot::{BlockDevice, FstabEntry, GroupUse, Mount, Snapshot};
use homelab_probe::plan;
use homelab_probe::{Expectations, Host, Status, check};

mod common;

fn fixture(name: &str) -> PathBuf {
    homelab_test_support::sysroot(&format!("migration/{name}"))
}

/// A copy of fixture `name` whose media disk holds what the real one does: every entry under
/// `mnt/PlexStorage` owned by 1000:110 (PUID:PGID), and the `lost+found` directory mkfs.ext4
/// made, root's, mode 0700. A checkout cannot hold other owners (or an empty directory), so the
/// copy is chowned and the directory made here; that needs root, as the test suite has (CI
/// runs it as root).
fn materialized(name: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    assert!(Command::new("cp").arg("-a").arg(fixture(name)).arg(&root).status().unwrap().success());
    let media = root.join("mnt/PlexStorage");
    if media.exists() {
        let out = Command::new("chown").args(["-R", "-h", "1000:110"]).arg(&media).output().unwrap();
        assert!(
            out.status.success(),
            "chown 1000:110 needs root (run the tests as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lf = media.join("lost+found");
        std::fs::create_dir(&lf).unwrap();
        std::os::unix::fs::lchown(&lf, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&lf, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    t
}

fn host_of(t: &tempfile::TempDir) -> Host {
    Host::at(t.path().join("root")).unwrap()
}

fn capture_old_host() -> Snapshot {
    let t = materialized("oldhost");
    let host = host_of(&t);
    let mut opts = CaptureOptions::default();
    opts.data_roots = vec![PathBuf::from("/mnt/PlexStorage")];
    capture::capture(&host, &opts)
}

/// `nix-instantiate --parse` on `text`: the generated module must be valid Nix.
fn assert_parses(text: &str) {
    if let Err(e) = homelab_test_support::nix::parse(text) {
        panic!("{e}\n--- module ---\n{text}");
    }
}

/// Another old host's disks, put straight into the snapshot model: a data disk named by its
/// kernel name with type `auto` in fstab, and a disk mounted by hand that fstab does not know.
fn with_disks(mut s: Snapshot) -> Snapshot {
    let e = |line, spec: &str, file: &str, t: &str, opts: &str, pass| FstabEntry {
        line,
        spec: spec.into(),
        file: file.into(),
        vfstype: t.into(),
        options: opts.split(',').map(str::to_owned).collect(),
        freq: 0,
        passno: pass,
    };
    s.fstab = Some(vec![
        e(4, "PARTUUID=6f1c1a34-8b5e-4a63-9c1d-2b9d2a6e7f10", "/boot/efi", "vfat", "umask=0077", 0),
        e(5, "PARTUUID=9a3b4c5d-1e2f-4a5b-8c7d-6e5f4a3b2c1d", "/recovery", "vfat", "umask=0077", 0),
        e(6, "UUID=3c1e5f0a-8d2b-4c6e-9f1a-7b3d5e2c4a6f", "/", "ext4", "noatime,errors=remount-ro", 0),
        e(7, "/dev/mapper/cryptswap", "none", "swap", "defaults", 0),
        e(9, "UUID=2f5a7c3e-1b9d-4e8f-a6c2-5d3b7e9f1a4c", "/mnt/PlexStorage", "ext4", "defaults,nofail", 2),
        e(10, "/dev/sdc1", "/mnt/PlexDrive", "auto", "defaults", 2),
    ]);
    let b = |name: &str, uuid: &str, mp: &str| BlockDevice {
        name: name.into(),
        path: format!("/dev/{name}"),
        fstype: Some("ext4".into()),
        uuid: Some(uuid.into()),
        label: None,
        partuuid: None,
        mountpoints: vec![mp.into()],
    };
    s.block_devices = Some(vec![
        b("sdb1", "2f5a7c3e-1b9d-4e8f-a6c2-5d3b7e9f1a4c", "/mnt/PlexStorage"),
        b("sdc1", "8e4b2d6f-3a1c-4f7e-b5d9-1c7e3a5f9b2d", "/mnt/PlexDrive"),
        b("sdd1", "11111111-2222-3333-4444-555555555555", "/media/palav/Backup"),
    ]);
    s.mounts = Some(vec![Mount {
        target: "/media/palav/Backup".into(),
        source: "/dev/sdd1".into(),
        fstype: "ext4".into(),
        options: vec!["rw".into()],
    }]);
    s
}

#[test]
fn capture_records_what_the_move_needs() {
    let s = capture_old_host();
    assert_eq!(s.host.hostname.as_deref(), Some("pop-os"));
    let palav = s.user("palav").expect("palav is captured");
    assert_eq!((palav.uid, palav.gid, palav.primary_group.as_deref()), (1000, 1000, Some("palav")));
    assert!(palav.groups.contains(&"render".to_owned()));
    let render = s.group("render").unwrap();
    assert_eq!(render.gid, 110);
    for want in [
        GroupUse::WellKnown,
        GroupUse::DeviceOwner { path: "/dev/dri/renderD128".into() },
        GroupUse::DataRootOwner { path: "/mnt/PlexStorage".into() },
        GroupUse::Compose { stack: "plex".into(), service: "plex".into(), field: "PGID".into() },
    ] {
        assert!(render.uses.contains(&want), "render: missing {want:?} in {:?}", render.uses);
    }
    assert!(s.group("docker").unwrap().uses.contains(&GroupUse::Compose {
        stack: "homepage".into(),
        service: "homepage".into(),
        field: "user".into()
    }));
    assert_eq!(s.gpus.len(), 1);
    assert_eq!(s.gpus[0].vendor, GpuVendor::Intel);
    assert_eq!(s.gpus[0].kernel_driver.as_deref(), Some("i915"));
    let stacks: Vec<(&str, Option<&str>)> =
        s.compose.stacks.iter().map(|st| (st.name.as_str(), st.owner.as_deref())).collect();
    assert_eq!(stacks, vec![("plex", Some("palav")), ("homepage", Some("palav")), ("watchtower", Some("root"))]);
    let plex = &s.compose.stacks[0].services[0];
    assert_eq!((plex.env("PUID"), plex.env("PGID")), (Some("1000"), Some("110")));
    assert!(!plex.environment.contains_key("PLEX_CLAIM"), "secrets stay out of the snapshot");
    assert_eq!(plex.dri_devices(), vec!["/dev/dri"]);
    // Disks: fstab, the mount table and the block devices behind the mounts.
    let fstab = s.fstab.as_ref().expect("fstab captured");
    assert_eq!(fstab.len(), 6);
    let drive = fstab.iter().find(|e| e.file == "/mnt/PlexDrive").unwrap();
    assert_eq!(
        (drive.line, drive.spec.as_str(), drive.vfstype.as_str()),
        (10, "UUID=8e4b2d6f-3a1c-4f7e-b5d9-1c7e3a5f9b2d", "ext4")
    );
    let sdb1 = s.block_devices.as_ref().unwrap().iter().find(|b| b.name == "sdb1").unwrap();
    assert_eq!(sdb1.uuid.as_deref(), Some("2f5a7c3e-1b9d-4e8f-a6c2-5d3b7e9f1a4c"));
    assert_eq!(sdb1.mountpoints, ["/mnt/PlexStorage"]);
    assert!(s.mounts.as_ref().unwrap().iter().any(|m| m.target == "/mnt/PlexDrive" && m.source == "/dev/sdc1"));
    assert!(s.gaps.iter().all(|g| g.section == "data_roots"), "{:?}", s.gaps);
    // The snapshot survives its own JSON.
    let json = serde_json::to_string_pretty(&s).unwrap();
    assert_eq!(Snapshot::from_json_str(&json, Path::new("snapshot.json")).unwrap(), s);
}

#[test]
fn plan_pins_render_with_mk_force_and_warns_about_the_journal_gateway() {
    let p = plan::plan(&capture_old_host()).unwrap();
    assert_parses(&p.module);
    assert!(p.module.contains("users.groups.render.gid = lib.mkForce 110;"), "{}", p.module);
    assert!(p.module.contains("users.groups.docker.gid = lib.mkForce 995;"), "{}", p.module);
    assert!(p.module.contains("users.groups.palav.gid = 1000;"), "{}", p.module);
    assert!(p.module.contains("(config.users.groups ? \"systemd-journal-gateway\")"), "{}", p.module);
    assert!(p.module.contains("extraPackages = [ pkgs.intel-media-driver ];"), "{}", p.module);
    assert!(p.module.contains("\"log-driver\"") || p.module.contains("log-driver = \"json-file\";"));
    assert!(!p.module.contains("vaapiIntel") && !p.module.contains("vaapiVdpau"));
    assert!(
        p.warnings.iter().any(|w| w.subject == "group render" && w.message.contains("systemd-journal-gateway")),
        "{:?}",
        p.warnings
    );
    // The expectations file is what the library reads back.
    let e = Expectations::from_toml_str(&p.expectations_toml, Some(Path::new("homelab-probe.toml"))).unwrap();
    assert_eq!(e, p.expectations);
    assert_eq!(e.groups["render"], 110);
    let access = &e.render.as_ref().unwrap().access;
    assert_eq!(access.len(), 1);
    assert_eq!((access[0].name.as_deref(), access[0].uid, access[0].gid), (Some("plex/plex"), 1000, 110));
    assert!(p.migration.contains("homelab-compose-plex.service"));
    // Plex maps /dev/dri on the Intel iGPU: VA-API H.264 encode on its render node.
    let va = e.gpu.vaapi.as_ref().expect("[gpu.vaapi]");
    assert_eq!(va.encode, [homelab_probe::model::expectations::VideoCodec::H264]);
    assert_eq!(va.node.as_deref(), Some("/dev/dri/renderD128"));
    assert!(e.gpu.nvenc.is_empty() && !e.gpu.nvidia_containers);
}

#[test]
fn new_host_that_matches_passes() {
    let p = plan::plan(&capture_old_host()).unwrap();
    let t = materialized("newhost-ok");
    let findings = check::run(&host_of(&t), &p.expectations);
    let bad: Vec<_> = findings.iter().filter(|f| f.status == Status::Fail).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(findings.iter().any(|f| f.check == "render_access" && f.subject == "/dev/dri/renderD128"));
}

#[test]
fn new_host_with_render_303_fails_on_group_render_with_the_mk_force_remedy() {
    let p = plan::plan(&capture_old_host()).unwrap();
    let t = materialized("newhost-render303");
    let findings = check::run(&host_of(&t), &p.expectations);
    let failed: Vec<(&str, &str)> =
        findings.iter().filter(|f| f.status == Status::Fail).map(|f| (f.check.as_str(), f.subject.as_str())).collect();
    assert_eq!(failed, vec![("group_gid", "group render")]);
    let f = findings.iter().find(|f| f.check == "group_gid" && f.subject == "group render").unwrap();
    assert_eq!(f.remedy.as_ref().unwrap().text, "users.groups.render.gid = lib.mkForce 110;");
    assert!(f.message.contains("has gid 303, expected 110"), "{}", f.message);
}

#[test]
fn new_host_with_a_disk_missing_fails_on_that_disk() {
    let p = plan::plan(&capture_old_host()).unwrap();
    assert_parses(&p.module);
    assert!(p.module.contains("fileSystems.\"/mnt/PlexDrive\" = {"), "{}", p.module);
    let t = materialized("newhost-disk-missing");
    let findings = check::run(&host_of(&t), &p.expectations);
    let failed: std::collections::BTreeSet<(&str, &str)> =
        findings.iter().filter(|f| f.status == Status::Fail).map(|f| (f.check.as_str(), f.subject.as_str())).collect();
    let want: std::collections::BTreeSet<(&str, &str)> =
        [("mount_device", "/mnt/PlexDrive"), ("mounted", "/mnt/PlexDrive"), ("shadowed_data", "/mnt/PlexDrive")].into();
    assert_eq!(failed, want, "{findings:#?}");
    // The disk that is there passes.
    assert!(
        findings
            .iter()
            .any(|f| f.check == "mount_source" && f.subject == "/mnt/PlexStorage" && f.status == Status::Pass)
    );
}

#[test]
fn new_host_with_a_file_of_another_owner_fails_the_drift_check() {
    let s = capture_old_host();
    let own = s.data_roots[0].ownership.as_ref().expect("the media disk was walked");
    assert!(own.complete);
    // As many entries as `find ROOT -xdev` lists.
    let find = Command::new("find").arg(fixture("oldhost").join("mnt/PlexStorage")).arg("-xdev").output().unwrap();
    assert_eq!(own.entries, String::from_utf8_lossy(&find.stdout).lines().count() as u64);
    assert_eq!((own.by_owner.len(), own.by_owner[0].uid, own.by_owner[0].gid), (1, 1000, 110));
    // mkfs's root-owned lost+found is left out of the walk, or no ext4 disk would have one owner.
    assert_eq!(s.data_roots[0].exclude, ["/lost+found"]);
    let p = plan::plan(&s).unwrap();
    let d = &p.expectations.drift;
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].root.as_str(), d[0].uid, d[0].gid), ("/mnt/PlexStorage", 1000, 110));
    assert_eq!(d[0].exclude, ["/lost+found"]);
    // After the move, a container running as root left a file behind.
    let t = materialized("newhost-ok");
    let srt = t.path().join("root/mnt/PlexStorage/Movies/Big Buck Bunny (2008)/Big Buck Bunny (2008).en.srt");
    std::os::unix::fs::lchown(&srt, Some(0), Some(0)).unwrap();
    let findings = check::run(&host_of(&t), &p.expectations);
    let failed: Vec<(&str, &str)> =
        findings.iter().filter(|f| f.status == Status::Fail).map(|f| (f.probe.name(), f.subject.as_str())).collect();
    assert_eq!(failed, vec![("drift", "/mnt/PlexStorage")], "{findings:#?}");
}

#[test]
fn data_disks_by_uuid_with_nofail_and_units_wait_for_them() {
    let p = plan::plan(&with_disks(capture_old_host())).unwrap();
    assert_parses(&p.module);
    let m = &p.module;
    assert!(
        m.contains(
            "fileSystems.\"/mnt/PlexStorage\" = {\n    device = \"/dev/disk/by-uuid/2f5a7c3e-1b9d-4e8f-a6c2-5d3b7e9f1a4c\";\n    fsType = \"ext4\";\n    options = [ \"defaults\" \"nofail\" ];\n  };"
        ),
        "{m}"
    );
    // A kernel name in fstab becomes the filesystem's UUID; `auto` its real type.
    assert!(
        m.contains(
            "fileSystems.\"/mnt/PlexDrive\" = {\n    device = \"/dev/disk/by-uuid/8e4b2d6f-3a1c-4f7e-b5d9-1c7e3a5f9b2d\";\n    fsType = \"ext4\";\n    options = [ \"defaults\" \"nofail\" ];\n  };"
        ),
        "{m}"
    );
    for system in ["fileSystems.\"/\"", "fileSystems.\"/boot/efi\"", "fileSystems.\"/recovery\"", "swap\" ="] {
        assert!(!m.contains(system), "{system} must not be in the module:\n{m}");
    }
    assert!(
        m.contains("RequiresMountsFor = [ \"/home/palav/docker/plex\" \"/mnt/PlexStorage\" \"/mnt/PlexDrive\" ];"),
        "{m}"
    );
    assert!(m.contains("RequiresMountsFor = [ \"/home/palav/Projects/homepage\" ];"), "{m}");
    assert!(p.warnings.iter().any(|w| w.subject == "/media/palav/Backup"), "{:?}", p.warnings);
}

#[test]
fn new_host_without_the_va_api_driver_fails_on_the_render_node_with_the_package() {
    let p = plan::plan(&capture_old_host()).unwrap();
    // newhost-ok without /run/opengl-driver: hardware.graphics was not configured.
    let t = materialized("newhost-ok");
    std::fs::remove_file(t.path().join("root/run/opengl-driver")).unwrap();
    let findings = check::run(&host_of(&t), &p.expectations);
    let failed: Vec<(&str, &str)> =
        findings.iter().filter(|f| f.status == Status::Fail).map(|f| (f.check.as_str(), f.subject.as_str())).collect();
    assert_eq!(
        failed,
        vec![("vaapi", "/dev/dri/renderD128"), ("vaapi_encode", "VA-API h264 encode on /dev/dri/renderD128")],
        "{findings:#?}"
    );
    for f in findings.iter().filter(|f| f.status == Status::Fail) {
        assert!(f.remedy.as_ref().unwrap().text.contains("pkgs.intel-media-driver"), "{f:?}");
    }
}
