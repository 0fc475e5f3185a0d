//! The real NVML and libva, loaded on this machine. CI machines have no GPU, no /dev/dri and
//! no NVIDIA driver; there the probes must give these exact Skip reasons. libva itself must be
//! installed (`scripts/setup-debian --test` installs Debian's libva2 and libva-drm2), so the
//! hand-written binding is loaded and called for real: every symbol must bind, and devices
//! that are not GPUs must fail cleanly. (`vaInitialize` failing on a real render node, with
//! libva's messages captured, was seen under QEMU with virtio-gpu: docs/gpu.md.)
//!
//! On a machine with a GPU the same tests check the other branch: every render node gets a
//! VA-API answer or a reason, and no finding claims that there is no GPU.

use std::path::Path;

use homelab_probe::host::nvml::{NvmlLibrary, SystemNvml};
use homelab_probe::host::vaapi::{SystemLibva, VaapiLoader};
use homelab_probe::model::gpu::{NvmlOpenError, VaLoadError, VaQueryError};
use homelab_probe::{Expectations, Finding, Host, Status, check};

/// What this machine has, read without the library: PCI display controllers and DRM nodes.
fn machine_has_gpu() -> bool {
    let display = std::fs::read_dir("/sys/bus/pci/devices").into_iter().flatten().flatten().any(|e| {
        std::fs::read_to_string(e.path().join("class")).is_ok_and(|c| c.trim().to_ascii_lowercase().starts_with("0x03"))
    });
    display || Path::new("/dev/dri").exists()
}

fn nvml_installed() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "/usr/lib64/libnvidia-ml.so.1",
        "/run/opengl-driver/lib/libnvidia-ml.so.1",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

fn gpu_findings() -> Vec<Finding> {
    let host = Host::live();
    check::run(&host, &Expectations::builtin()).into_iter().filter(|f| f.probe == homelab_probe::Probe::Gpu).collect()
}

fn find<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    findings.iter().find(|f| f.check == check).unwrap_or_else(|| panic!("no {check} finding in {findings:#?}"))
}

#[test]
fn libva_loads_and_a_non_gpu_device_fails_cleanly() {
    let lib = match SystemLibva.load() {
        Ok(lib) => lib,
        Err(VaLoadError::Library { attempts }) => {
            panic!(
                "libva must be installed for this test (scripts/setup-debian --test installs libva2 and libva-drm2): {attempts:?}"
            )
        }
        Err(VaLoadError::Disabled) => panic!("built without the vaapi feature"),
    };
    assert_eq!(lib.libraries(), "libva.so.2 + libva-drm.so.2");

    // Devices that are not DRM devices: libva 2.17's vaGetDisplayDRM gives no display.
    for dev in ["/dev/null", "/dev/zero"] {
        assert_eq!(lib.query(dev), Err(VaQueryError::NoDisplay), "{dev}");
    }

    let err = lib.query("/nonexistent/renderD128").unwrap_err();
    assert_eq!(err, VaQueryError::Open { error: "No such file or directory (os error 2)".into() });
}

#[test]
fn nvml_without_an_nvidia_driver() {
    if nvml_installed() {
        // A machine with NVIDIA's driver: NVML opens, or says why not in its own terms.
        match SystemNvml.open() {
            Ok(nvml) => assert!(nvml.driver_version().is_ok()),
            Err(e) => assert!(matches!(e, NvmlOpenError::Init { .. }), "{e:?}"),
        }
        return;
    }
    let Err(e) = SystemNvml.open() else { panic!("NVML opened without libnvidia-ml.so.1") };
    let NvmlOpenError::Library { attempts } = e else { panic!("{e:?}") };
    let got: Vec<(&str, &str)> = attempts.iter().map(|a| (a.library.as_str(), a.error.as_str())).collect();
    assert_eq!(
        got,
        [
            ("libnvidia-ml.so.1", "libnvidia-ml.so.1: cannot open shared object file: No such file or directory"),
            (
                "/run/opengl-driver/lib/libnvidia-ml.so.1",
                "/run/opengl-driver/lib/libnvidia-ml.so.1: cannot open shared object file: No such file or directory"
            ),
        ]
    );
}

#[test]
fn probes_on_this_machine_give_exact_reasons() {
    let findings = gpu_findings();
    for f in &findings {
        assert!(f.status != Status::Fail, "built-in defaults never fail a host for its GPUs: {f:#?}");
    }
    if machine_has_gpu() {
        assert!(findings.iter().all(|f| !f.message.starts_with("no GPU")), "{findings:#?}");
        assert!(findings.iter().any(|f| f.check == "gpu_inventory" && f.status != Status::Skip), "{findings:#?}");
        return;
    }
    let reasons: Vec<(&str, &str, Status, &str)> =
        findings.iter().map(|f| (f.check.as_str(), f.subject.as_str(), f.status, f.message.as_str())).collect();
    // A build sandbox (Nix) has no /sys: the reason says so.
    let inventory = if Path::new("/sys/bus/pci/devices").exists() {
        "no GPU: no PCI display controller in /sys/bus/pci/devices and no DRM device under /dev/dri"
    } else {
        "no GPU: /sys/bus/pci/devices cannot be listed here and no DRM device under /dev/dri"
    };
    let mut want = vec![("gpu_inventory", "GPUs", Status::Skip, inventory)];
    if !nvml_installed() {
        want.push((
            "nvml",
            "NVML",
            Status::Skip,
            "no NVIDIA GPU: no PCI device with vendor id 0x10de, and NVML (libnvidia-ml.so.1, part of NVIDIA's driver) is not installed (libnvidia-ml.so.1: cannot open shared object file: No such file or directory; /run/opengl-driver/lib/libnvidia-ml.so.1: cannot open shared object file: No such file or directory)",
        ));
    }
    want.push((
        "vaapi",
        "/dev/dri",
        Status::Skip,
        "no render node under /dev/dri (no GPU driver is loaded), so there is no device for VA-API to open",
    ));
    let containers = find(&findings, "nvidia_containers");
    if !Path::new("/etc/cdi").exists()
        && !Path::new("/var/run/cdi").exists()
        && !Path::new("/etc/docker/daemon.json").exists()
    {
        want.push((
            "nvidia_containers",
            "NVIDIA GPU in containers",
            Status::Skip,
            "no NVIDIA GPU, no nvidia.com/gpu CDI device and no nvidia Docker runtime: nothing to hand to a container",
        ));
    } else {
        assert_eq!(containers.status, Status::Skip, "{containers:#?}");
    }
    for w in &want {
        assert!(reasons.contains(w), "missing {w:#?} in {reasons:#?}");
    }
}
