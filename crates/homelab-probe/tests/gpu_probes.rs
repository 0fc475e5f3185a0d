//! The GPU probe over fixture sysroots of an Intel iGPU, an AMD and an NVIDIA host on NixOS,
//! the Pop!_OS NVIDIA host before its move, and a headless host (see fixtures/README.md).
//! In a sysroot NVML and libva are not asked, so these cover the inventory from sysfs, the
//! driver-file predictions, the CDI and Docker configuration, and the requirements.

use homelab_probe::{Finding, Probe, RemedyKind, Status};
use rstest::rstest;

mod common;
use common::find;

fn run(root: &str, expect: Option<&str>) -> Vec<Finding> {
    common::run(root, expect).into_iter().filter(|f| f.probe == Probe::Gpu).collect()
}

const ROOTS: &[&str] = &["gpu-intel-nixos", "gpu-amd-nixos", "gpu-nvidia-nixos", "gpu-nvidia-popos", "headless"];
const EXPECTS: &[Option<&str>] = &[None, Some("gpu-plex-intel.toml"), Some("gpu-plex-nvidia.toml")];

/// (check, subject, status) triples each scenario must produce.
#[rstest]
#[case::intel_builtin("gpu-intel-nixos", None, &[
    ("gpu_inventory", "0000:00:02.0", Status::Pass),
    ("nvml", "NVML", Status::Skip),
    // NixOS without intel-media-driver: the migration mistake that costs Quick Sync.
    ("vaapi", "/dev/dri/renderD128", Status::Warn),
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Skip),
])]
#[case::intel_plex("gpu-intel-nixos", Some("gpu-plex-intel.toml"), &[
    ("vaapi", "/dev/dri/renderD128", Status::Fail),
    ("vaapi_encode", "VA-API h264 encode on /dev/dri/renderD128", Status::Fail),
    ("vaapi_encode", "VA-API hevc encode on /dev/dri/renderD128", Status::Fail),
])]
#[case::amd_builtin("gpu-amd-nixos", None, &[
    ("gpu_inventory", "0000:03:00.0", Status::Pass),
    ("vaapi", "/dev/dri/renderD128", Status::Skip),
])]
#[case::amd_plex("gpu-amd-nixos", Some("gpu-plex-intel.toml"), &[
    // The driver is there; whether it encodes HEVC can only be asked of libva on the host.
    ("vaapi_encode", "VA-API hevc encode on /dev/dri/renderD128", Status::Skip),
])]
#[case::amd_wants_nvenc("gpu-amd-nixos", Some("gpu-plex-nvidia.toml"), &[
    ("nvenc_codec", "NVENC h264", Status::Fail),
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Fail),
])]
#[case::nvidia_builtin("gpu-nvidia-nixos", None, &[
    ("gpu_inventory", "0000:01:00.0", Status::Pass),
    ("nvml", "NVML", Status::Skip),
    ("vaapi", "/dev/dri/renderD128", Status::Skip),
    ("cdi_spec", "/var/run/cdi/nvidia-container-toolkit.json", Status::Pass),
    ("docker_daemon", "/nix/store/m4n5b6v7c8x9z0l1k2j3h4g5f6d7s8a9-daemon.json", Status::Pass),
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Pass),
])]
#[case::nvidia_plex("gpu-nvidia-nixos", Some("gpu-plex-nvidia.toml"), &[
    ("nvenc_codec", "NVENC h264", Status::Skip),
    ("nvenc_codec", "NVENC hevc", Status::Skip),
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Pass),
])]
#[case::popos_builtin("gpu-nvidia-popos", None, &[
    ("cdi_spec", "/etc/cdi/nvidia.yaml", Status::Fail),
    ("docker_daemon", "/etc/docker/daemon.json", Status::Pass),
    // nvidia-docker2's runtime still works without CDI.
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Pass),
])]
#[case::headless_builtin("headless", None, &[
    ("gpu_inventory", "GPUs", Status::Skip),
    ("nvml", "NVML", Status::Skip),
    ("vaapi", "/dev/dri", Status::Skip),
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Skip),
])]
#[case::headless_plex_intel("headless", Some("gpu-plex-intel.toml"), &[
    ("vaapi_encode", "VA-API h264 encode on /dev/dri/renderD128", Status::Fail),
])]
#[case::headless_plex_nvidia("headless", Some("gpu-plex-nvidia.toml"), &[
    ("nvenc_codec", "NVENC hevc", Status::Fail),
    ("nvidia_containers", "NVIDIA GPU in containers", Status::Fail),
])]
fn scenario(#[case] root: &str, #[case] expect: Option<&str>, #[case] want: &[(&str, &str, Status)]) {
    let findings = run(root, expect);
    for (check, subject, status) in want {
        let f = find(&findings, check, subject);
        assert_eq!(f.status, *status, "{check} {subject}: {f:#?}");
    }
}

#[test]
fn intel_without_intel_media_driver_names_the_package() {
    let findings = run("gpu-intel-nixos", None);
    let f = find(&findings, "vaapi", "/dev/dri/renderD128");
    // The mounted disk has an empty /run: the tmpfiles rule says where /run/opengl-driver points.
    assert_eq!(
        f.message,
        "libva is asked only on the live host (this is a sysroot); no VA-API driver for /dev/dri/renderD128: looked for iHD_drv_video.so, i965_drv_video.so (DRM driver i915) in /nix/store/0c8qlw5m2n5g4h1ad5xnq3f2cn7l4q7a-graphics-drivers/lib/dri, /usr/lib/x86_64-linux-gnu/dri, /usr/lib64/dri-nonfree, /usr/lib64/dri-freeworld, /usr/lib64/dri, /usr/lib/dri"
    );
    let r = f.remedy.as_ref().unwrap();
    assert_eq!(r.kind, RemedyKind::Nixos);
    assert_eq!(
        r.text,
        "hardware.graphics.enable = true;\nhardware.graphics.extraPackages = [ pkgs.intel-media-driver ];  # Intel Gen8+ (Broadwell or newer) -> intel-media-driver (iHD)"
    );
}

#[test]
fn inventory_merges_pci_and_drm() {
    let findings = run("gpu-nvidia-nixos", None);
    let f = find(&findings, "gpu_inventory", "0000:01:00.0");
    assert_eq!(f.message, "NVIDIA [10de:2504], driver nvidia, /dev/dri/renderD128, /dev/dri/card0");
    let g = &f.evidence["gpu"];
    assert_eq!(g["pci_class"], "0x030000");
    assert_eq!(g["vendor"], "nvidia");
    let va = find(&findings, "vaapi", "/dev/dri/renderD128");
    // In a sysroot the DRM driver name is derived from the kernel driver: nvidia -> nvidia-drm.
    assert_eq!(va.evidence["driver_resolution"]["drm_driver"], "nvidia-drm");
    assert_eq!(va.evidence["driver_resolution"]["candidates"][0], "nvidia");
    assert_eq!(
        va.message,
        "libva is asked only on the live host (this is a sysroot); libva would load /run/opengl-driver/lib/dri/nvidia_drv_video.so"
    );
}

#[test]
fn nixos_docker_config_comes_from_the_unit() {
    let findings = run("gpu-nvidia-nixos", None);
    let d = find(&findings, "docker_daemon", "/nix/store/m4n5b6v7c8x9z0l1k2j3h4g5f6d7s8a9-daemon.json");
    assert_eq!(d.message, "no nvidia runtime, features.cdi = true");
    assert_eq!(
        d.evidence["docker"]["found_via"],
        "--config-file in /etc/systemd/system/docker.service.d/overrides.conf"
    );
    let s = find(&findings, "nvidia_containers", "NVIDIA GPU in containers");
    assert_eq!(
        s.message,
        "0000:01:00.0 NVIDIA [10de:2504] (driver nvidia): containers can be given it through CDI devices nvidia.com/gpu=0, nvidia.com/gpu=all"
    );
}

#[test]
fn broken_cdi_spec_names_file_and_line() {
    let findings = run("gpu-nvidia-popos", None);
    let f = find(&findings, "cdi_spec", "/etc/cdi/nvidia.yaml");
    assert_eq!(
        f.message,
        "/etc/cdi/nvidia.yaml:9: while parsing a block mapping, did not find expected key (column 4)"
    );
    assert_eq!(f.evidence["error"]["line"], 9);
}

#[test]
fn headless_reasons_are_precise() {
    let findings = run("headless", None);
    let msgs: Vec<(&str, &str)> = findings.iter().map(|f| (f.check.as_str(), f.message.as_str())).collect();
    assert_eq!(
        msgs,
        [
            (
                "gpu_inventory",
                "no GPU: no PCI display controller in /sys/bus/pci/devices and no DRM device under /dev/dri"
            ),
            ("nvml", "no NVIDIA GPU: no PCI device with vendor id 0x10de, so there is no NVENC to check"),
            (
                "vaapi",
                "no render node under /dev/dri (no GPU driver is loaded), so there is no device for VA-API to open"
            ),
            (
                "nvidia_containers",
                "no NVIDIA GPU, no nvidia.com/gpu CDI device and no nvidia Docker runtime: nothing to hand to a container"
            ),
        ]
    );
}

#[test]
fn builtin_defaults_never_fail_a_host_for_its_gpus() {
    // Only broken configuration fails without expectations (the Pop!_OS host's CDI spec).
    for root in ROOTS {
        for f in run(root, None) {
            if f.status == Status::Fail {
                assert_eq!((*root, f.check.as_str()), ("gpu-nvidia-popos", "cdi_spec"), "{f:#?}");
            }
        }
    }
}

/// Every NixOS remedy the GPU probe can give is valid Nix: wrapped in a module, each must pass
/// `nix-instantiate --parse` (the real parser; scripts/setup-debian --test installs it).
#[test]
fn nixos_remedies_parse_as_nix() {
    use common::gpu;
    use homelab_probe::check::gpu::remedy;
    use homelab_probe::model::inventory::GpuVendor;

    let mut remedies = vec![
        remedy::nvidia_driver(),
        remedy::nvidia_container_toolkit(),
        remedy::docker_cdi(),
        remedy::vaapi_driver(&gpu(GpuVendor::Intel, "0x8086", "0x46a6", "i915")),
        remedy::vaapi_driver(&gpu(GpuVendor::Intel, "0x8086", "0x0412", "i915")),
        remedy::vaapi_driver(&gpu(GpuVendor::Amd, "0x1002", "0x73bf", "amdgpu")),
        remedy::vaapi_driver(&gpu(GpuVendor::Nvidia, "0x10de", "0x2504", "nvidia")),
    ];
    for root in ROOTS {
        for expect in EXPECTS {
            remedies.extend(run(root, *expect).into_iter().filter_map(|f| f.remedy));
        }
    }
    remedies.retain(|r| r.kind == RemedyKind::Nixos);
    remedies.sort_by(|a, b| a.text.cmp(&b.text));
    remedies.dedup();
    assert!(remedies.len() >= 7, "{remedies:#?}");
    for r in &remedies {
        let module = format!("{{ config, lib, pkgs, ... }}:\n{{\n{}\n}}\n", r.text);
        if let Err(e) = homelab_test_support::nix::parse(&module) {
            panic!("{}\n{e}", r.text);
        }
    }
}
