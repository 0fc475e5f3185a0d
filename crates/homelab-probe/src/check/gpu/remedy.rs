//! NixOS remedies for GPU findings, per vendor and (for Intel) per generation.
//!
//! Facts behind them (nixpkgs, see docs/gpu.md): NVIDIA's driver is enabled by
//! `services.xserver.videoDrivers = [ "nvidia" ];` (also on headless hosts), and from driver 560
//! on `hardware.nvidia.open` must be set explicitly; `hardware.nvidia-container-toolkit.enable`
//! requires that driver and sets Docker's `features.cdi` itself for Docker >= 25;
//! `intel-media-driver` supports Broadwell (Gen8) and newer, older Intel GPUs need
//! `intel-vaapi-driver`; AMD's VA-API driver (`radeonsi`) is part of mesa, so
//! `hardware.graphics.enable = true;` is enough; `hardware.nvidia.videoAcceleration` (default
//! on) adds `nvidia-vaapi-driver`, which decodes only.

use crate::model::finding::Remedy;
use crate::model::inventory::{GpuDevice, GpuVendor};

/// How old an Intel GPU is, as far as its VA-API driver is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntelGeneration {
    /// Older than Broadwell: only `intel-vaapi-driver` (i965) supports it. The platform name.
    PreBroadwell(&'static str),
    /// Not in the kernel's tables of pre-Broadwell ids, or bound to `xe`: Gen8+ (Broadwell or
    /// newer), which `intel-media-driver` (iHD) supports.
    Gen8OrNewer,
}

/// PCI device ids of every Intel GPU older than Broadwell, from the Linux kernel's
/// `include/drm/i915_pciids.h` (torvalds/linux @ 03e399020cd2). That list is closed: no new
/// pre-Broadwell GPUs appear, so any other Intel id is Broadwell or newer.
const PRE_BROADWELL: &[(&str, &[u16])] = &[
    (
        "Gen2/Gen3 (i830 to Pineview)",
        &[
            0x3577, 0x2562, 0x3582, 0x358e, 0x2572, 0x2582, 0x258a, 0x2592, 0x2772, 0x27a2, 0x27ae, 0x29b2, 0x29c2,
            0x29d2, 0xa001, 0xa011,
        ],
    ),
    (
        "Gen4 (i965 to G45)",
        &[0x2972, 0x2982, 0x2992, 0x29a2, 0x2a02, 0x2a12, 0x2a42, 0x2e02, 0x2e12, 0x2e22, 0x2e32, 0x2e42, 0x2e92],
    ),
    ("Ironlake (Gen5)", &[0x0042, 0x0046]),
    ("Sandy Bridge (Gen6)", &[0x0102, 0x010a, 0x0112, 0x0122, 0x0106, 0x0116, 0x0126]),
    ("Ivy Bridge (Gen7)", &[0x0156, 0x0166, 0x0152, 0x015a, 0x0162, 0x016a]),
    ("Valleyview/Bay Trail (Gen7)", &[0x0f30, 0x0f31, 0x0f32, 0x0f33]),
    (
        "Haswell (Gen7.5)",
        &[
            0x0a02, 0x0a0a, 0x0a0b, 0x0a06, 0x0a0e, 0x0402, 0x040a, 0x040b, 0x040e, 0x0c02, 0x0c0a, 0x0c0b, 0x0c0e,
            0x0d02, 0x0d0a, 0x0d0b, 0x0d0e, 0x0406, 0x0c06, 0x0d06, 0x0a12, 0x0a1a, 0x0a1b, 0x0a16, 0x0a1e, 0x0412,
            0x041a, 0x041b, 0x041e, 0x0c12, 0x0c1a, 0x0c1b, 0x0c1e, 0x0d12, 0x0d1a, 0x0d1b, 0x0d1e, 0x0416, 0x0c16,
            0x0d16, 0x0a22, 0x0a2a, 0x0a2b, 0x0a26, 0x0a2e, 0x0422, 0x042a, 0x042b, 0x042e, 0x0c22, 0x0c2a, 0x0c2b,
            0x0c2e, 0x0d22, 0x0d2a, 0x0d2b, 0x0d2e, 0x0426, 0x0c26, 0x0d26,
        ],
    ),
];

/// The generation class of the Intel GPU `gpu`.
pub fn intel_generation(gpu: &GpuDevice) -> IntelGeneration {
    if gpu.kernel_driver.as_deref() == Some("xe") {
        return IntelGeneration::Gen8OrNewer;
    }
    let Some(id) = gpu.pci.as_ref().and_then(|p| p.device_id()) else { return IntelGeneration::Gen8OrNewer };
    PRE_BROADWELL
        .iter()
        .find(|(_, ids)| ids.contains(&id))
        .map_or(IntelGeneration::Gen8OrNewer, |(name, _)| IntelGeneration::PreBroadwell(name))
}

/// The NixOS lines that install the VA-API driver for `gpu`, with a comment saying why.
pub fn vaapi_driver(gpu: &GpuDevice) -> Remedy {
    match gpu.vendor {
        GpuVendor::Intel => match intel_generation(gpu) {
            IntelGeneration::Gen8OrNewer => Remedy::nixos(
                "hardware.graphics.enable = true;\nhardware.graphics.extraPackages = [ pkgs.intel-media-driver ];  # Intel Gen8+ (Broadwell or newer) -> intel-media-driver (iHD)",
            ),
            IntelGeneration::PreBroadwell(platform) => Remedy::nixos(format!(
                "hardware.graphics.enable = true;\nhardware.graphics.extraPackages = [ pkgs.intel-vaapi-driver ];  # {platform} is older than Broadwell: intel-media-driver does not support it"
            )),
        },
        GpuVendor::Amd => Remedy::nixos(
            "hardware.graphics.enable = true;  # AMD's VA-API driver (radeonsi_drv_video.so) comes with mesa",
        ),
        GpuVendor::Nvidia => Remedy::nixos(
            "hardware.nvidia.videoAcceleration = true;  # adds nvidia-vaapi-driver: VA-API decode only; NVIDIA encodes through NVENC",
        ),
        GpuVendor::Virtio => Remedy::manual(
            "virtio-gpu's VA-API driver needs virgl 3D acceleration from the VM host (a virtio-gpu-gl device with an OpenGL display); for transcoding, pass a real GPU through to the VM instead",
        ),
        GpuVendor::Other => Remedy::manual(format!(
            "install the VA-API driver for DRM driver {} ({}_drv_video.so) into hardware.graphics.extraPackages",
            gpu.drm_driver_name().unwrap_or_else(|| "?".into()),
            gpu.drm_driver_name().unwrap_or_else(|| "?".into())
        )),
    }
}

/// NVIDIA's proprietary driver on NixOS.
pub fn nvidia_driver() -> Remedy {
    Remedy::nixos(
        "services.xserver.videoDrivers = [ \"nvidia\" ];  # loads NVIDIA's driver, also on a headless host\nhardware.nvidia.open = true;  # must be set explicitly (driver >= 560): true for Turing (RTX 20xx, GTX 16xx) and newer, false for older GPUs",
    )
}

/// NVIDIA's Container Toolkit on NixOS (CDI spec in /run/cdi, Docker's `features.cdi`).
pub fn nvidia_container_toolkit() -> Remedy {
    Remedy::nixos(
        "hardware.nvidia-container-toolkit.enable = true;  # needs services.xserver.videoDrivers = [ \"nvidia\" ]; writes the CDI spec to /run/cdi and sets Docker's features.cdi (Docker >= 25); containers then ask for nvidia.com/gpu=all",
    )
}

/// Docker's CDI switch, for Docker 25 to 28.1 (28.2 and newer have CDI on by default).
pub fn docker_cdi() -> Remedy {
    Remedy::nixos(
        "virtualisation.docker.daemon.settings.features.cdi = true;  # hardware.nvidia-container-toolkit.enable sets it for Docker >= 25",
    )
}

/// Regenerating a stale or broken NVIDIA CDI spec.
pub fn regenerate_cdi() -> Remedy {
    Remedy::command(
        "systemctl restart nvidia-container-toolkit-cdi-generator.service  # NixOS; elsewhere: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inventory::PciDevice;
    use rstest::rstest;

    fn intel(device: &str, driver: &str) -> GpuDevice {
        GpuDevice {
            pci: Some(PciDevice {
                address: "0000:00:02.0".into(),
                vendor: Some("0x8086".into()),
                device: Some(device.into()),
            }),
            pci_class: Some("0x030000".into()),
            vendor: GpuVendor::Intel,
            kernel_driver: Some(driver.into()),
            drm_driver: None,
            render_node: Some("/dev/dri/renderD128".into()),
            card_node: None,
        }
    }

    #[rstest]
    #[case::alder_lake("0x46a6", "i915", IntelGeneration::Gen8OrNewer)]
    #[case::broadwell("0x1616", "i915", IntelGeneration::Gen8OrNewer)]
    #[case::haswell("0x0412", "i915", IntelGeneration::PreBroadwell("Haswell (Gen7.5)"))]
    #[case::ivy_bridge("0x0166", "i915", IntelGeneration::PreBroadwell("Ivy Bridge (Gen7)"))]
    #[case::bay_trail("0x0f31", "i915", IntelGeneration::PreBroadwell("Valleyview/Bay Trail (Gen7)"))]
    #[case::sandy_bridge("0x0126", "i915", IntelGeneration::PreBroadwell("Sandy Bridge (Gen6)"))]
    #[case::arc_on_xe("0x56a0", "xe", IntelGeneration::Gen8OrNewer)]
    fn generations(#[case] device: &str, #[case] driver: &str, #[case] want: IntelGeneration) {
        assert_eq!(intel_generation(&intel(device, driver)), want);
    }

    #[test]
    fn remedies_name_the_package() {
        assert!(vaapi_driver(&intel("0x46a6", "i915")).text.contains("pkgs.intel-media-driver"));
        let old = vaapi_driver(&intel("0x0412", "i915")).text;
        assert!(old.contains("pkgs.intel-vaapi-driver") && old.contains("Haswell"), "{old}");
    }
}
