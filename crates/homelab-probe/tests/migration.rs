//! The migration round trip: capture a fixture "old host" (Pop!_OS: render gid 110, Plex with
//! PUID 1000 / PGID 110, two data disks by UUID, an Intel iGPU), plan, then `check` the
//! generated expectations against fixture "new hosts": one that matches, one where render kept
//! NixOS's gid 303, one with a data disk missing, one without the VA-API driver. Every
//! generated module must parse with the real Nix parser.
//!
//! Old hosts at the edges (render at docker's 131, a data group at NixOS's video gid,
//! duplicate lines in /etc/group, /etc/passwd and fstab) go the whole way: capture, plan, the
//! module evaluated with the real NixOS module system (nix/tests/nixos), and a new host whose
//! /etc/group, /etc/passwd and render nodes are what that evaluation declares, checked with the
//! plan's expectations.

use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_probe::capture::{self, CaptureOptions};
use homelab_probe::model::inventory::GpuVendor;
use homelab_probe::model::snapshot::{BlockDevice, FstabEntry, GroupUse, Mount, Snapshot};
use homelab_probe::plan;
use homelab_probe::{Expectations, Host, Status, check};

mod common;
mod nixos_eval;

fn fixture(name: &str) -> PathBuf {
    homelab_test_support::sysroot(&format!("migration/{name}"))
}

/// A copy of fixture `name` whose media disk holds what the real one does: every entry under
/// `mnt/PlexStorage` owned by 1000:110 (PUID:PGID), and the `lost+found` directory mkfs.ext4
/// made, root's, mode 0700. A checkout cannot hold other owners (or an empty directory), so the
/// copy is chowned and the directory made here; that needs root, as the test suite has (CI
/// runs it as root).
fn materialized(name: &str) -> tempfile::TempDir {
    materialized_as(name, (1000, 110))
}

/// [`materialized`], the media owned by `owner` (uid, gid).
fn materialized_as(name: &str, owner: (u32, u32)) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    assert!(Command::new("cp").arg("-a").arg(fixture(name)).arg(&root).status().unwrap().success());
    let media = root.join("mnt/PlexStorage");
    if media.exists() {
        let out =
            Command::new("chown").args(["-R", "-h", &format!("{}:{}", owner.0, owner.1)]).arg(&media).output().unwrap();
        assert!(
            out.status.success(),
            "chown needs root (run the tests as root, as CI does): {}",
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

// ---------------------------------------------------------------------------------------------
// Old hosts at the edges, the whole way round

/// What the real module system makes of `module` (nix/tests/nixos `summary`): users.groups
/// gids, users.users; the test fails on a failed assertion.
fn evaluated(module: &str) -> serde_json::Value {
    let lib = nixos_eval::nixpkgs_lib();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hardware-parity.nix");
    std::fs::write(&file, module).unwrap();
    let v = nixos_eval::eval(&format!(
        "let s = {}; in s.summary (s.eval [ {} ]).config",
        nixos_eval::stand_in(&lib),
        nixos_eval::nix_path(&file)
    ));
    assert_eq!(v["failedAssertions"], serde_json::json!([]), "{module}");
    v
}

/// A new host as the evaluated configuration makes it: a copy of `newhost-ok` whose
/// /etc/group and /etc/passwd hold exactly the groups and users the configuration declares (a
/// group without a gid gets a free one, as activation gives it), whose render nodes belong to
/// the configuration's render group (udev assigns them by name), and whose media disk is owned
/// by `owner`.
fn new_host_from(config: &serde_json::Value, owner: (u32, u32)) -> tempfile::TempDir {
    let t = materialized_as("newhost-ok", owner);
    let root = t.path().join("root");
    let mut gids: Vec<(String, u32)> = Vec::new();
    let mut free = 400;
    for (name, gid) in config["groups"].as_object().unwrap() {
        let gid = match gid.as_u64() {
            Some(g) => g as u32,
            None => {
                while config["groups"].as_object().unwrap().values().any(|g| g.as_u64() == Some(free)) {
                    free += 1;
                }
                free += 1;
                (free - 1) as u32
            }
        };
        gids.push((name.clone(), gid));
    }
    let users = config["users"].as_object().unwrap();
    let group_lines: String = gids
        .iter()
        .map(|(name, gid)| {
            let members: Vec<&str> = users
                .iter()
                .filter(|(_, u)| u["extraGroups"].as_array().unwrap().iter().any(|g| g == name))
                .map(|(n, _)| n.as_str())
                .collect();
            format!("{name}:x:{gid}:{}\n", members.join(","))
        })
        .collect();
    let gid_of = |name: &str| gids.iter().find(|(n, _)| n == name).map(|(_, g)| *g).unwrap();
    let passwd_lines: String = users
        .iter()
        .map(|(name, u)| {
            format!(
                "{name}:x:{}:{}::{}:/run/current-system/sw/bin/bash\n",
                u["uid"],
                gid_of(u["group"].as_str().unwrap()),
                u["home"].as_str().unwrap()
            )
        })
        .collect();
    std::fs::write(root.join("etc/group"), group_lines).unwrap();
    std::fs::write(root.join("etc/passwd"), passwd_lines).unwrap();
    let manifest = root.join("homelab-sysroot.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let render = format!("gid = {}\nmode = \"0666\"", gid_of("render"));
    std::fs::write(&manifest, text.replace("gid = 110\nmode = \"0666\"", &render)).unwrap();
    t
}

/// The old host captured, changed by `edit` (another old host, built in code), planned; the
/// plan evaluated and checked on the new host its module makes. Returns the plan and the
/// evaluated configuration, `None` without the nixpkgs lib outside CI.
fn round_trip(edit: impl FnOnce(&mut Snapshot), owner: (u32, u32)) -> (plan::Plan, serde_json::Value) {
    let mut s = capture_old_host();
    edit(&mut s);
    let p = plan::plan(&s).unwrap();
    let config = evaluated(&p.module);
    let t = new_host_from(&config, owner);
    let findings = check::run(&host_of(&t), &p.expectations);
    let failed: Vec<_> = findings.iter().filter(|f| f.status == Status::Fail).collect();
    assert!(failed.is_empty(), "{failed:#?}\n{}", p.module);
    // Every expected gid and uid was checked on the new host, and held.
    for g in p.expectations.groups.keys() {
        let f = findings.iter().find(|f| f.check == "group_gid" && f.subject == format!("group {g}"));
        assert_eq!(f.map(|f| f.status), Some(Status::Pass), "group {g}: {f:?}");
    }
    for u in p.expectations.users.keys() {
        let f = findings.iter().find(|f| f.check == "user_uid" && f.subject == format!("user {u}"));
        assert_eq!(f.map(|f| f.status), Some(Status::Pass), "user {u}: {f:?}");
    }
    (p, config)
}

/// Every place the captured old host has render's gid 110, set to `gid`.
fn render_at(s: &mut Snapshot, gid: u32) {
    for g in s.identities.groups.iter_mut().filter(|g| g.name == "render") {
        g.gid = gid;
    }
    for st in &mut s.compose.stacks {
        for svc in &mut st.services {
            if svc.env("PGID") == Some("110") {
                svc.environment.insert("PGID".into(), Some(gid.to_string()));
            }
        }
    }
    for r in &mut s.data_roots {
        for o in r.ownership.iter_mut().flat_map(|o| o.by_owner.iter_mut()) {
            o.gid = gid;
        }
    }
    for n in s.drm_nodes.iter_mut().filter(|n| n.stat.gid == 110) {
        n.stat.gid = gid;
    }
}

#[test]
fn old_host_with_render_at_dockers_131_round_trips() {
    // Ubuntu/Pop!_OS can give render 131; the module enables Docker, whose group NixOS puts at
    // 131: render keeps 131, docker gets a free gid.
    let (p, config) = round_trip(|s| render_at(s, 131), (1000, 131));
    assert_eq!(config["groups"]["render"], 131);
    assert_eq!(config["groups"]["docker"], 995, "docker is kept at the old host's 995 here: 131 is free");
    assert_eq!(p.expectations.groups["render"], 131);
    // Without the old host's docker group the module moves NixOS's docker off 131.
    let (p, config) = round_trip(
        |s| {
            render_at(s, 131);
            s.identities.groups.retain(|g| g.name != "docker");
            for st in &mut s.compose.stacks {
                for svc in &mut st.services {
                    if svc.user.as_deref() == Some("1000:995") {
                        svc.user = Some("1000:1000".into());
                    }
                }
            }
        },
        (1000, 131),
    );
    assert_eq!(config["groups"]["render"], 131);
    assert_eq!(config["groups"]["docker"], serde_json::Value::Null, "a free gid, picked at activation");
    assert!(p.module.contains("users.groups.docker.gid = lib.mkForce null;"), "{}", p.module);
}

#[test]
fn old_host_with_a_data_group_at_nixos_video_gid_round_trips() {
    // Debian's tape is 26, NixOS's video: a tape-owned media disk keeps gid 26, as video.
    let (p, config) = round_trip(
        |s| {
            render_at(s, 26);
            for g in s.identities.groups.iter_mut().filter(|g| g.name == "render") {
                g.name = "tape".into();
            }
            for u in &mut s.identities.users {
                for g in u.groups.iter_mut().filter(|g| *g == "render") {
                    *g = "tape".into();
                }
            }
        },
        (1000, 26),
    );
    assert_eq!((config["groups"]["video"].as_u64(), config["groups"]["tape"].as_u64()), (Some(26), Some(25)));
    assert_eq!(p.expectations.groups.get("video"), Some(&26));
    assert!(p.migration.contains("gid 26 of group `tape` is kept as NixOS's `video`"), "{}", p.migration);
}

#[test]
fn old_host_with_duplicate_lines_round_trips() {
    let (p, config) = round_trip(
        |s| {
            let mut render = s.group("render").unwrap().clone();
            render.gid = 44;
            s.identities.groups.push(render);
            let mut palav = s.user("palav").unwrap().clone();
            palav.uid = 1001;
            s.identities.users.push(palav);
            let fstab = s.fstab.as_mut().unwrap();
            let mut again = fstab.iter().find(|e| e.file == "/mnt/PlexStorage").unwrap().clone();
            again.line = 20;
            again.file = "/mnt/PlexStorage/".into();
            again.spec = "UUID=00000000-0000-4000-8000-000000000000".into();
            fstab.push(again);
        },
        (1000, 110),
    );
    assert_eq!(config["groups"]["render"], 110, "the first /etc/group line");
    assert_eq!(config["users"]["palav"]["uid"], 1000, "the first /etc/passwd line");
    assert_eq!(p.module.matches("fileSystems.\"/mnt/PlexStorage\"").count(), 1);
    assert!(p.module.contains("2f5a7c3e-1b9d-4e8f-a6c2-5d3b7e9f1a4c"), "the mounted one: {}", p.module);
    for want in
        ["- group `render`: kept gid 110", "- user `palav`: kept uid 1000", "- mount point `/mnt/PlexStorage`: kept"]
    {
        assert!(p.migration.contains(want), "{want}: {}", p.migration);
    }
}
