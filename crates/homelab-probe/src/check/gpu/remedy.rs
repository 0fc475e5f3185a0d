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
use crate::model::inventory::{GpuDevice, GpuVendor, IntelGeneration};

/// The NixOS lines that install the VA-API driver for `gpu`, with a comment saying why.
pub fn vaapi_driver(gpu: &GpuDevice) -> Remedy {
    match gpu.vendor {
        GpuVendor::Intel => match gpu.intel_generation() {
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
    use crate::model::inventory::test_intel_gpu as intel;

    #[test]
    fn remedies_name_the_package() {
        assert!(vaapi_driver(&intel("0x46a6", "i915")).text.contains("pkgs.intel-media-driver"));
        let old = vaapi_driver(&intel("0x0412", "i915")).text;
        assert!(old.contains("pkgs.intel-vaapi-driver") && old.contains("Haswell"), "{old}");
    }
}
