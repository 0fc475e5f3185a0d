//! Plan decisions on snapshots of other hosts (NVIDIA, old Intel, AMD, odd compose settings),
//! and a property: whatever strings a snapshot holds, the generated module parses with the real
//! Nix parser and the expectations are read back by the library.

use std::collections::BTreeMap;
use std::path::Path;

use homelab_probe::model::compose::{
    ComposeService, ComposeStack, DeviceMapping, DeviceReservation, VolumeKind, VolumeMount,
};
use homelab_probe::model::inventory::GpuVendor;
use homelab_probe::model::report::{HostInfo, ToolInfo};
use homelab_probe::model::snapshot::{
    CapturedGroup, DataRoot, FstabEntry, GroupUse, HumanUser, Identities, OwnerCount, Ownership, RecordedBaseline,
    Snapshot,
};
use homelab_probe::{Expectations, plan};
use proptest::prelude::*;

mod common;
use common::gpu;
use homelab_test_support::nix::parse as parses;

fn snapshot() -> Snapshot {
    let mut s = Snapshot::new(HostInfo { hostname: Some("old".into()), root: "/".into(), live: false, kernel: None });
    s.tool = ToolInfo { name: "homelab-probe".into(), version: "test".into() };
    s.captured_at = "2026-01-01T00:00:00Z".into();
    s.identities = Identities {
        users: vec![HumanUser {
            name: "alice".into(),
            uid: 1000,
            gid: 100,
            primary_group: Some("users".into()),
            home: "/home/alice".into(),
            shell: "/bin/bash".into(),
            groups: vec!["video".into()],
        }],
        groups: vec![],
    };
    s
}

fn service(name: &str) -> ComposeService {
    ComposeService {
        name: name.into(),
        file: "/srv/stacks/x/compose.yaml".into(),
        line: 2,
        image: Some("img".into()),
        profiles: vec![],
        environment: BTreeMap::new(),
        user: None,
        group_add: vec![],
        devices: vec![],
        runtime: None,
        device_reservations: vec![],
        gpus: vec![],
        volumes: vec![],
        ..ComposeService::default()
    }
}

fn stack(name: &str, dir: &str, services: Vec<ComposeService>) -> ComposeStack {
    ComposeStack {
        name: name.into(),
        dir: dir.into(),
        owner: Some("alice".into()),
        files: vec![format!("{dir}/compose.yaml")],
        env_file: None,
        active_profiles: vec![],
        services,
        unset_variables: vec![],
        problems: vec![],
        ..ComposeStack::new("", "")
    }
}

#[test]
fn nvidia_rtx_with_a_gpu_stack_gets_open_modules_and_the_toolkit() {
    let mut s = snapshot();
    s.gpus = vec![gpu(GpuVendor::Nvidia, "0x10de", "0x2684", "nvidia")];
    let mut jf = service("jellyfin");
    jf.runtime = Some("nvidia".into());
    jf.device_reservations = vec![DeviceReservation {
        driver: Some("nvidia".into()),
        capabilities: vec!["gpu".into()],
        ..Default::default()
    }];
    let mut plex = service("plex");
    plex.environment.insert("NVIDIA_DRIVER_CAPABILITIES".into(), Some("compute,video,utility".into()));
    plex.environment.insert("NVIDIA_VISIBLE_DEVICES".into(), Some("all".into()));
    s.compose.stacks = vec![stack("media", "/srv/media", vec![jf]), stack("plex", "/srv/plex", vec![plex])];
    let p = plan::plan(&s).unwrap();
    parses(&p.module).unwrap();
    assert!(p.module.contains("services.xserver.videoDrivers = [ \"nvidia\" ];"), "{}", p.module);
    assert!(p.module.contains("hardware.nvidia.open = true;"), "{}", p.module);
    assert!(p.module.contains("hardware.nvidia-container-toolkit.enable = true;"), "{}", p.module);
    assert!(p.expectations.gpu.nvidia_containers);
    // plex asks for video (NVIDIA_DRIVER_CAPABILITIES): NVENC H.264 must work.
    assert_eq!(p.expectations.gpu.nvenc, [homelab_probe::model::expectations::VideoCodec::H264]);
    assert!(
        p.warnings.iter().any(|w| w.subject == "media/jellyfin" && w.message.contains("nvidia.com/gpu=all")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn nvidia_pascal_without_gpu_stacks_gets_proprietary_modules_and_no_toolkit() {
    let mut s = snapshot();
    s.gpus = vec![gpu(GpuVendor::Nvidia, "0x10de", "0x1b80", "nvidia")];
    let p = plan::plan(&s).unwrap();
    parses(&p.module).unwrap();
    assert!(p.module.contains("hardware.nvidia.open = false;"), "{}", p.module);
    assert!(!p.module.contains("nvidia-container-toolkit.enable"), "{}", p.module);
    assert!(!p.module.contains("virtualisation.docker"), "no stacks, no docker:\n{}", p.module);
}

#[test]
fn a_gpu_stack_without_an_nvidia_gpu_is_a_warning_not_a_broken_module() {
    let mut s = snapshot();
    let mut svc = service("ollama");
    svc.gpus = vec![DeviceReservation::default()];
    s.compose.stacks = vec![stack("ai", "/srv/ai", vec![svc])];
    let p = plan::plan(&s).unwrap();
    assert!(!p.module.contains("nvidia"), "{}", p.module);
    assert!(p.warnings.iter().any(|w| w.subject == "NVIDIA"), "{:?}", p.warnings);
}

#[test]
fn old_intel_gets_the_i965_driver_and_amd_needs_nothing() {
    let mut s = snapshot();
    s.gpus = vec![gpu(GpuVendor::Intel, "0x8086", "0x0412", "i915"), {
        let mut g = gpu(GpuVendor::Amd, "0x1002", "0x73bf", "amdgpu");
        g.pci.as_mut().unwrap().address = "0000:03:00.0".into();
        g
    }];
    let p = plan::plan(&s).unwrap();
    parses(&p.module).unwrap();
    assert!(p.module.contains("extraPackages = [ pkgs.intel-vaapi-driver ];"), "{}", p.module);
    assert!(p.module.contains("# 0000:03:00.0 AMD [1002:73bf]: VA-API comes with mesa"), "{}", p.module);
}

#[test]
fn a_render_node_that_is_not_dev_dri_render_d_n_is_left_out_of_the_vaapi_check_with_a_warning() {
    // A snapshot from elsewhere or edited by hand: the expectations accept only
    // /dev/dri/renderD<n> as the VA-API node, and the written file must read back.
    for bad in ["/dev/dri/renderDx", "/dev/dri/card0", "/srv/renderD128", "/dev/dri/by-path/renderD128"] {
        let mut s = snapshot();
        let mut g = gpu(GpuVendor::Intel, "0x8086", "0x46a6", "i915");
        g.render_node = Some(bad.into());
        s.gpus = vec![g];
        let mut svc = service("jellyfin");
        svc.devices =
            vec![DeviceMapping { source: "/dev/dri".into(), target: "/dev/dri".into(), permissions: "rwm".into() }];
        s.compose.stacks = vec![stack("media", "/srv/media", vec![svc])];
        let p = plan::plan(&s).unwrap();
        let e = Expectations::from_toml_str(&p.expectations_toml, Some(Path::new("homelab-probe.toml")))
            .unwrap_or_else(|e| panic!("{bad}: {e}\n{}", p.expectations_toml));
        let vaapi = e.gpu.vaapi.as_ref().expect("a VA-API check all the same");
        assert_eq!(vaapi.node, None, "{bad}");
        assert!(p.warnings.iter().any(|w| w.message.contains(bad)), "{bad}: {:?}", p.warnings);
    }
}

#[test]
fn services_with_unknown_credentials_are_listed_not_guessed() {
    let mut s = snapshot();
    let dri = DeviceMapping { source: "/dev/dri".into(), target: "/dev/dri".into(), permissions: "rwm".into() };
    let mut by_name = service("frigate");
    by_name.user = Some("frigate".into());
    by_name.devices = vec![dri.clone()];
    let mut image_user = service("immich");
    image_user.devices = vec![dri.clone()];
    let mut numeric = service("jellyfin");
    numeric.user = Some("1000".into());
    numeric.group_add = vec!["44".into(), "render".into()];
    numeric.devices = vec![dri.clone()];
    let mut inactive = service("debug");
    inactive.profiles = vec!["debug".into()];
    inactive.devices = vec![dri];
    s.compose.stacks = vec![stack("media", "/srv/media", vec![by_name, image_user, numeric, inactive])];
    let p = plan::plan(&s).unwrap();
    let access = &p.expectations.render.as_ref().unwrap().access;
    assert_eq!(access.len(), 1, "{access:?}");
    // `user: "1000"` takes alice's primary gid (100), as Docker takes the image's passwd entry.
    assert_eq!((access[0].uid, access[0].gid, access[0].groups.clone()), (1000, 100, vec![44]));
    assert!(
        p.migration.contains("`media/frigate` maps /dev/dri but its credentials are not checked"),
        "{}",
        p.migration
    );
    assert!(p.migration.contains("`media/immich` maps /dev/dri"), "{}", p.migration);
    assert!(!p.migration.contains("media/debug"), "inactive profile: {}", p.migration);
    assert!(
        p.warnings.iter().any(|w| w.subject == "media/jellyfin" && w.message.contains("render")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn a_gid_that_every_nixos_system_holds_keeps_nixos_name() {
    let mut s = snapshot();
    // A "media" group at 26 owns the data: NixOS's video has 26, so the number stays, as video
    // (a second group at 26 would fail NixOS's uniqueness assertion).
    s.identities.groups = vec![CapturedGroup {
        name: "media".into(),
        gid: 26,
        members: vec![],
        uses: vec![GroupUse::DataRootOwner { path: "/srv/media".into() }],
    }];
    let p = plan::plan(&s).unwrap();
    parses(&p.module).unwrap();
    assert!(!p.module.contains("users.groups.media"), "{}", p.module);
    assert!(p.module.contains("# media (26): owns /srv/media; NixOS's video already has gid 26"), "{}", p.module);
    assert_eq!(p.expectations.groups.get("video"), Some(&26));
    let w = p.warnings.iter().find(|w| w.subject == "group media").unwrap();
    assert!(w.message.contains("gid 26 is video's on NixOS"), "{}", w.message);
}

#[test]
fn paths_that_systemd_would_split_are_left_out_with_a_warning() {
    let mut s = snapshot();
    let e = |spec: &str, file: &str, t: &str, o: &str| FstabEntry {
        line: 1,
        spec: spec.into(),
        file: file.into(),
        vfstype: t.into(),
        options: o.split(',').map(str::to_owned).collect(),
        freq: 0,
        passno: 0,
    };
    s.fstab = Some(vec![
        e("LABEL=Media Disk", "/mnt/Media Disk", "ext4", "defaults"),
        e("nas:/export/tv", "/mnt/tv", "nfs", "rw,_netdev"),
        e("/mnt/Media Disk/films", "/srv/films", "none", "bind"),
        e("tmpfs", "/tmp", "tmpfs", "size=1G"),
    ]);
    let mut svc = service("plex");
    svc.volumes = vec![
        VolumeMount {
            kind: VolumeKind::Bind,
            source: Some("/mnt/Media Disk/x".into()),
            target: "/x".into(),
            read_only: false,
            host_path: Some("/mnt/Media Disk/x".into()),
        },
        VolumeMount {
            kind: VolumeKind::Bind,
            source: Some("/mnt/tv/shows".into()),
            target: "/tv".into(),
            read_only: true,
            host_path: Some("/mnt/tv/shows".into()),
        },
    ];
    s.compose.stacks = vec![stack("plex", "/srv/100%/plex", vec![svc])];
    let p = plan::plan(&s).unwrap();
    parses(&p.module).unwrap();
    let m = &p.module;
    assert!(m.contains("fileSystems.\"/mnt/Media Disk\""), "{m}");
    assert!(m.contains("device = \"/dev/disk/by-label/Media Disk\";"), "{m}");
    assert!(m.contains("device = \"nas:/export/tv\";"), "{m}");
    assert!(m.contains("fsType = \"none\";\n    options = [ \"bind\" \"nofail\" ];"), "{m}");
    assert!(!m.contains("fileSystems.\"/tmp\""), "{m}");
    assert!(m.contains("RequiresMountsFor = [ \"/srv/100%%/plex\" \"/mnt/tv\" ];"), "{m}");
    assert!(m.contains("WorkingDirectory = \"/srv/100%%/plex\";"), "{m}");
    assert!(
        p.warnings.iter().any(|w| w.message.contains("\"/mnt/Media Disk\" cannot be written in RequiresMountsFor"))
    );
}

/// A data root whose entries belong to `owners` (uid, gid), ten each.
fn mixed_root(path: &str, owners: &[(u32, u32)]) -> DataRoot {
    DataRoot {
        path: path.into(),
        stat: None,
        owner_name: None,
        group_name: None,
        ownership: Some(Ownership {
            entries: 10 * owners.len() as u64,
            complete: true,
            by_owner: owners.iter().map(|&(uid, gid)| OwnerCount { uid, gid, entries: 10 }).collect(),
        }),
        exclude: vec![],
    }
}

const SHA: &str = "bf4adcb002cd769e4986497aee4865a88ee2476276ff87270b384c367b2824d1";

fn recorded(file: &str, roots: &[&str]) -> RecordedBaseline {
    RecordedBaseline {
        file: file.into(),
        roots: roots.iter().map(|r| (*r).to_owned()).collect(),
        entries: 68,
        bytes: 603,
        sha256: SHA.into(),
        complete: true,
    }
}

/// The expectations as `check` reads them from the file plan wrote.
fn read_back(p: &plan::Plan) -> Expectations {
    let e = Expectations::from_toml_str(&p.expectations_toml, Some(Path::new("homelab-probe.toml")))
        .unwrap_or_else(|e| panic!("{e}\n{}", p.expectations_toml));
    assert_eq!(e, p.expectations);
    e
}

#[test]
fn a_recorded_baseline_gets_a_baseline_section_and_the_steps_to_put_it_there() {
    let mut s = snapshot();
    s.data_roots = vec![
        mixed_root("/srv/appdata", &[(999, 999), (1000, 100), (33, 33)]),
        mixed_root("/srv/state", &[(70, 70), (0, 0)]),
    ];
    s.baseline = Some(recorded("/root/owners.baseline", &["/srv/appdata"]));
    let p = plan::plan(&s).unwrap();
    let e = read_back(&p);
    assert_eq!(e.baseline.len(), 1, "{}", p.expectations_toml);
    assert_eq!(e.baseline[0].file, "/var/lib/homelab-probe/owners.baseline");
    assert_eq!(format!("{}/owners.baseline", plan::BASELINE_DIR), e.baseline[0].file);
    assert!((e.baseline[0].map.is_empty(), e.baseline[0].max_seconds) == (true, None), "bounded by the default");
    assert!(p.expectations_toml.contains("\n[[baseline]]\nfile = \"/var/lib/homelab-probe/owners.baseline\"\n"));

    let m = &p.migration;
    for want in [
        "- ownership baseline /root/owners.baseline: 68 entries under /srv/appdata, 603 bytes, sha256 ",
        "- `check` compares the owner, group, mode and type of every entry under /srv/appdata with the baseline `/var/lib/homelab-probe/owners.baseline` (68 entries, taken by `capture`)",
        "- [ ] Copy `/root/owners.baseline` into this directory: in it `capture` recorded the owner, group and mode of every entry under /srv/appdata as they were before the move (68 entries, 603 bytes, SHA-256 `",
        "`install -D -m 0600 owners.baseline /var/lib/homelab-probe/owners.baseline`",
        &format!(
            "`echo '{SHA}  /var/lib/homelab-probe/owners.baseline' | sha256sum --check` must print `/var/lib/homelab-probe/owners.baseline: OK`"
        ),
        "`homelab-verify baseline check /var/lib/homelab-probe/owners.baseline`",
        // The root the baseline leaves out still gets the step by hand, under another name.
        "`homelab-verify baseline take /srv/state -o more-owners.baseline`",
        "`homelab-verify baseline check more-owners.baseline`",
    ] {
        assert!(m.contains(want), "MIGRATION.md lacks {want:?}:\n{m}");
    }
    assert!(!m.contains("/srv/appdata -o"), "the recorded root is not taken again by hand:\n{m}");
    // The install step comes before the first check, the copy before the wipe.
    let at = |w: &str| m.find(w).unwrap_or_else(|| panic!("{w}"));
    assert!(at("install -D") < at("`homelab-verify check --expect"));
    assert!(at("Copy `/root/owners.baseline`") < at("## On the new host"));
    // Mixed owners under the baseline's root are what it checks: no warning; the other root's stay.
    assert!(!p.warnings.iter().any(|w| w.subject == "/srv/appdata" && w.message.contains("mixed")), "{:?}", p.warnings);
    assert!(p.warnings.iter().any(|w| w.subject == "/srv/state" && w.message.contains("mixed")), "{:?}", p.warnings);
}

#[test]
fn a_baseline_under_an_odd_name_is_kept_under_a_plain_one_and_an_incomplete_one_is_a_warning() {
    let mut s = snapshot();
    s.data_roots = vec![mixed_root("/srv/appdata", &[(999, 999), (33, 33)])];
    let mut b = recorded("/root/it's my\\x0aowners", &["/srv/appdata"]);
    b.complete = false;
    s.baseline = Some(b);
    let p = plan::plan(&s).unwrap();
    assert_eq!(read_back(&p).baseline[0].file, "/var/lib/homelab-probe/owners.baseline");
    assert!(
        p.migration.contains("`install -D -m 0600 'it'\\''s my\\x0aowners' /var/lib/homelab-probe/owners.baseline`"),
        "{}",
        p.migration
    );
    assert!(
        p.warnings.iter().any(|w| w.message.contains("could not read some directories under /srv/appdata")),
        "{:?}",
        p.warnings
    );
    // Nothing left to take by hand: every mixed root is in the baseline.
    assert!(!p.migration.contains("baseline take"), "{}", p.migration);

    s.baseline = Some(recorded("/root/pop-os.appdata.baseline", &["/srv"]));
    let p = plan::plan(&s).unwrap();
    assert_eq!(read_back(&p).baseline[0].file, "/var/lib/homelab-probe/pop-os.appdata.baseline");
}

#[test]
fn a_snapshot_without_a_baseline_plans_as_before() {
    // The committed snapshot was written before the field existed.
    let file = homelab_test_support::fixture("snapshots/testvm.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("\"baseline\""));
    let s = Snapshot::from_json_str(&text, &file).unwrap();
    assert_eq!(s.baseline, None);
    let p = plan::plan(&s).unwrap();
    assert!(read_back(&p).baseline.is_empty());
    assert!(!p.expectations_toml.contains("[[baseline]]"), "{}", p.expectations_toml);
    let m = &p.migration;
    assert!(
        m.contains(
            "`homelab-verify baseline take ROOT... -o owners.baseline` and keep `owners.baseline` with this directory."
        ),
        "{m}"
    );
    assert!(m.contains("After the data is copied: `homelab-verify baseline check owners.baseline`"), "{m}");
    assert!(!m.contains("sha256sum") && !m.contains("/var/lib/homelab-probe"), "{m}");
}

fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("${builtins.abort \"x\"}".to_owned()),
        Just("''${x}''".to_owned()),
        Just("a\"b\\c\nd".to_owned()),
        Just("é 😀".to_owned()),
        Just("in".to_owned()),
        "[ -~]{0,12}",
        "\\PC{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Names, paths and labels from a snapshot cannot break the module: it always parses, and
    /// the expectations always read back.
    #[test]
    fn any_snapshot_strings_give_a_module_that_parses(
        host in nasty(), stack_name in nasty(), dir in nasty(), mount in nasty(), label in nasty(),
        svc_name in nasty(), user in nasty(), problem in nasty(),
    ) {
        let mut s = snapshot();
        s.host.hostname = Some(host);
        s.gpus = vec![gpu(GpuVendor::Intel, "0x8086", "0x46a6", "i915")];
        s.fstab = Some(vec![FstabEntry {
            line: 3,
            spec: format!("LABEL={label}"),
            file: format!("/mnt/{mount}"),
            vfstype: "ext4".into(),
            options: vec!["defaults".into()],
            freq: 0,
            passno: 2,
        }]);
        let mut svc = service(&svc_name);
        svc.user = Some(user);
        svc.devices = vec![DeviceMapping { source: "/dev/dri".into(), target: "/dev/dri".into(), permissions: "rwm".into() }];
        svc.volumes = vec![VolumeMount {
            kind: VolumeKind::Bind,
            source: None,
            target: "/data".into(),
            read_only: false,
            host_path: Some(format!("/mnt/{mount}/x")),
        }];
        let mut st = stack(&stack_name, &format!("/home/alice/docker/{dir}"), vec![svc]);
        st.problems = vec![homelab_probe::model::text::ParseError { file: "/x".into(), line: 1, message: problem }];
        s.compose.stacks = vec![st];
        let p = plan::plan(&s).unwrap();
        prop_assert!(parses(&p.module).is_ok(), "{:?}\n{}", parses(&p.module), p.module);
        let e = Expectations::from_toml_str(&p.expectations_toml, Some(Path::new("homelab-probe.toml"))).unwrap();
        prop_assert_eq!(e, p.expectations);
    }
}
