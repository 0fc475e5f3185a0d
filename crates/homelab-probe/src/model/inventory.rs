//! Facts the probes gather about devices, shared by `check` and (later) `capture`.

use serde::{Deserialize, Serialize};

use crate::host::FileStat;

/// What kind of DRM node a device file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrmNodeKind {
    /// `renderD*`: unprivileged rendering and video encode/decode (VA-API, NVENC via CUDA).
    Render,
    /// `card*`: the primary node, modesetting (displays).
    Card,
}

/// A PCI device, as sysfs names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Address in sysfs form, `0000:00:02.0`.
    pub address: String,
    /// Vendor id, e.g. `0x8086` (Intel), `0x1002` (AMD), `0x10de` (NVIDIA), `0x1af4` (virtio).
    pub vendor: Option<String>,
    /// Device id, e.g. `0x46a6`.
    pub device: Option<String>,
}

/// One node under `/dev/dri` with what sysfs and the kernel say about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrmNode {
    /// Absolute path, `/dev/dri/renderD128`.
    pub path: String,
    /// Render or card node.
    pub kind: DrmNodeKind,
    /// Owner, group, mode and file type.
    pub stat: FileStat,
    /// Name of the owning user, when the identity database has one.
    pub owner_name: Option<String>,
    /// Name of the owning group, when the identity database has one. `None` for a gid that no
    /// group holds (the udev stale-gid trap).
    pub group_name: Option<String>,
    /// The POSIX access ACL, when the node has one (logind's `uaccess` adds `user:<seat user>:rw`).
    pub acl: Option<crate::host::acl::Acl>,
    /// Kernel driver bound to the device (`i915`, `amdgpu`, `nvidia`, `virtio_gpu`...), from
    /// `/sys/class/drm/<node>/device/driver`.
    pub kernel_driver: Option<String>,
    /// The PCI device behind the node, when there is one.
    pub pci: Option<PciDevice>,
    /// DRM driver name from the `DRM_IOCTL_VERSION` ioctl (live host only).
    pub drm_driver: Option<String>,
    /// Why `drm_driver` is absent, when it was tried and failed or was not tried.
    pub drm_driver_note: Option<String>,
}

impl PciDevice {
    /// Normalises a PCI address to the sysfs form, `0000:01:00.0` (lower case, 4-digit domain).
    ///
    /// Accepts NVML's `00000000:01:00.0` (8-digit domain, upper case), the sysfs form, and the
    /// domain-less `01:00.0` of `lspci`. Returns `None` for anything else. A domain above
    /// `0xffff` (Intel VMD) keeps all its digits, as sysfs writes it (`10000:e1:00.0`).
    pub fn normalise_address(s: &str) -> Option<String> {
        let s = s.trim();
        let (rest, func) = s.rsplit_once('.')?;
        let mut parts: Vec<&str> = rest.split(':').collect();
        let domain = if parts.len() == 3 { parts.remove(0) } else { "0" };
        let [bus, dev] = parts.as_slice() else { return None };
        let hex = |t: &str, max_len: usize| -> Option<u32> {
            if t.is_empty() || t.len() > max_len || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(t, 16).ok()
        };
        let domain = hex(domain, 8)?;
        let bus = hex(bus, 2)?;
        let dev = hex(dev, 2).filter(|d| *d < 0x20)?;
        let func = func.parse::<u8>().ok().filter(|f| *f < 8 && func.len() == 1)?;
        Some(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func}"))
    }

    /// The vendor, from the PCI vendor id.
    pub fn gpu_vendor(&self) -> GpuVendor {
        self.vendor.as_deref().map_or(GpuVendor::Other, GpuVendor::from_pci_id)
    }

    /// The device id as a number (`0x46a6` -> 0x46a6).
    pub fn device_id(&self) -> Option<u16> {
        u16::from_str_radix(self.device.as_deref()?.trim().trim_start_matches("0x"), 16).ok()
    }

    /// `8086:46a6`, the form `lspci -nn` prints, when both ids are known.
    pub fn ids(&self) -> Option<String> {
        match (&self.vendor, &self.device) {
            (Some(v), Some(d)) => Some(format!("{}:{}", v.trim_start_matches("0x"), d.trim_start_matches("0x"))),
            _ => None,
        }
    }
}

/// Who made a GPU, from its PCI vendor id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuVendor {
    /// `0x8086`.
    Intel,
    /// `0x1002` (ATI/AMD).
    Amd,
    /// `0x10de`.
    Nvidia,
    /// `0x1af4` (Red Hat/virtio: QEMU's virtio-gpu).
    Virtio,
    /// Anything else, or unknown.
    Other,
}

impl GpuVendor {
    /// The vendor of PCI vendor id `id` (`0x8086`, `8086`; any case).
    pub fn from_pci_id(id: &str) -> Self {
        match id.trim().trim_start_matches("0x").to_ascii_lowercase().as_str() {
            "8086" => GpuVendor::Intel,
            "1002" => GpuVendor::Amd,
            "10de" => GpuVendor::Nvidia,
            "1af4" => GpuVendor::Virtio,
            _ => GpuVendor::Other,
        }
    }

    /// `Intel`, `AMD`, `NVIDIA`, `virtio`, `unknown vendor`.
    pub fn name(self) -> &'static str {
        match self {
            GpuVendor::Intel => "Intel",
            GpuVendor::Amd => "AMD",
            GpuVendor::Nvidia => "NVIDIA",
            GpuVendor::Virtio => "virtio",
            GpuVendor::Other => "unknown vendor",
        }
    }
}

/// One GPU: a PCI display controller (class `0x03xxxx`) and/or a DRM device, with its nodes.
///
/// A GPU can exist without DRM nodes (NVIDIA's `nvidia.ko` without `nvidia-drm`, a GPU bound to
/// `vfio-pci` for a VM, or no driver at all), and a DRM device can exist without PCI (`vgem`,
/// SoC GPUs), so both sources are merged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuDevice {
    /// The PCI function, when the GPU is a PCI device.
    pub pci: Option<PciDevice>,
    /// PCI class code from sysfs (`0x030000` VGA, `0x030200` 3D controller such as a data-centre
    /// NVIDIA GPU, `0x038000` other display controller).
    pub pci_class: Option<String>,
    /// Vendor, from the PCI vendor id.
    pub vendor: GpuVendor,
    /// Kernel driver bound to the device (`i915`, `xe`, `amdgpu`, `nvidia`, `nouveau`,
    /// `virtio_gpu`, `vfio-pci`), `None` when no driver is bound.
    pub kernel_driver: Option<String>,
    /// DRM driver name from `DRM_IOCTL_VERSION` (`i915`, `amdgpu`, `nvidia-drm`; live host only).
    pub drm_driver: Option<String>,
    /// The render node, `/dev/dri/renderD128`.
    pub render_node: Option<String>,
    /// The primary node, `/dev/dri/card0`.
    pub card_node: Option<String>,
}

impl GpuDevice {
    /// What findings call it: the PCI address, else the render or card node.
    pub fn subject(&self) -> String {
        self.pci
            .as_ref()
            .map(|p| p.address.clone())
            .or_else(|| self.render_node.clone())
            .or_else(|| self.card_node.clone())
            .unwrap_or_else(|| "GPU".to_owned())
    }

    /// `NVIDIA [10de:2504]`, `Intel [8086:46a6]`.
    pub fn describe(&self) -> String {
        match self.pci.as_ref().and_then(PciDevice::ids) {
            Some(ids) => format!("{} [{ids}]", self.vendor.name()),
            None => self.vendor.name().to_owned(),
        }
    }

    /// The DRM driver name libva sees (`DRM_IOCTL_VERSION`): read on the live host, else
    /// derived from the kernel driver (`nvidia` registers its DRM device as `nvidia-drm`; the
    /// other drivers use their own name).
    pub fn drm_driver_name(&self) -> Option<String> {
        self.drm_driver.clone().or_else(|| {
            self.kernel_driver.as_deref().map(|k| if k == "nvidia" { "nvidia-drm".to_owned() } else { k.to_owned() })
        })
    }
}

/// A video codec the GPU probes ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    Hevc,
    /// AV1.
    Av1,
}

impl VideoCodec {
    /// Every codec, in report order.
    pub const ALL: [VideoCodec; 3] = [VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1];

    /// `H.264`, `HEVC`, `AV1`.
    pub fn label(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::Hevc => "HEVC",
            VideoCodec::Av1 => "AV1",
        }
    }

    /// `h264`, `hevc`, `av1` (the spelling of the expectations file and JSON).
    pub fn key(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
            VideoCodec::Av1 => "av1",
        }
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::nvml("00000000:01:00.0", Some("0000:01:00.0"))]
    #[case::nvml_upper("00000000:C1:00.0", Some("0000:c1:00.0"))]
    #[case::sysfs("0000:00:02.0", Some("0000:00:02.0"))]
    #[case::lspci("01:00.0", Some("0000:01:00.0"))]
    #[case::vmd_domain("10000:e1:00.0", Some("10000:e1:00.0"))]
    #[case::function("0000:00:1f.3", Some("0000:00:1f.3"))]
    #[case::bad_device("0000:00:20.0", None)]
    #[case::bad_function("0000:00:02.8", None)]
    #[case::too_many("0:0000:00:02.0", None)]
    #[case::garbage("GPU-1234", None)]
    #[case::empty("", None)]
    fn pci_addresses(#[case] input: &str, #[case] want: Option<&str>) {
        assert_eq!(PciDevice::normalise_address(input).as_deref(), want);
    }

    #[test]
    fn nvml_and_sysfs_forms_meet() {
        let nvml = PciDevice::normalise_address("00000000:01:00.0").unwrap();
        let sysfs = PciDevice::normalise_address("0000:01:00.0").unwrap();
        assert_eq!(nvml, sysfs);
    }

    #[rstest]
    #[case("0x8086", GpuVendor::Intel)]
    #[case("0x1002", GpuVendor::Amd)]
    #[case("0x10DE", GpuVendor::Nvidia)]
    #[case("10de", GpuVendor::Nvidia)]
    #[case("0x1af4", GpuVendor::Virtio)]
    #[case("0x1234", GpuVendor::Other)]
    fn vendors(#[case] id: &str, #[case] want: GpuVendor) {
        assert_eq!(GpuVendor::from_pci_id(id), want);
    }
}
