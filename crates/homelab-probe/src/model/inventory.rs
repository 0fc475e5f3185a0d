//! Facts the probes gather about devices, shared by `check` and (later) `capture`.

use serde::{Deserialize, Serialize};

use crate::model::acl::Acl;
use crate::model::fs::FileStat;

/// What kind of DRM node a device file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrmNodeKind {
    /// `renderD*`: unprivileged rendering and video encode/decode (VA-API, NVENC via CUDA).
    Render,
    /// `card*`: the primary node, modesetting (displays).
    Card,
}

impl DrmNodeKind {
    /// `renderD128` -> Render, `card0` -> Card, anything else (`by-path`) -> None.
    pub fn of_name(name: &str) -> Option<Self> {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if name.strip_prefix("renderD").is_some_and(digits) {
            Some(DrmNodeKind::Render)
        } else if name.strip_prefix("card").is_some_and(digits) {
            Some(DrmNodeKind::Card)
        } else {
            None
        }
    }
}

/// Whether `path` names a render node: `/dev/dri/renderD` and digits (`/dev/dri/renderD128`).
pub fn is_render_node(path: &str) -> bool {
    path.strip_prefix("/dev/dri/").is_some_and(|n| DrmNodeKind::of_name(n) == Some(DrmNodeKind::Render))
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
    pub acl: Option<Acl>,
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
#[non_exhaustive]
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
#[non_exhaustive]
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

impl GpuDevice {
    /// The generation class of this Intel GPU (meaningful for Intel GPUs only).
    pub fn intel_generation(&self) -> IntelGeneration {
        if self.kernel_driver.as_deref() == Some("xe") {
            return IntelGeneration::Gen8OrNewer;
        }
        let Some(id) = self.pci.as_ref().and_then(|p| p.device_id()) else { return IntelGeneration::Gen8OrNewer };
        PRE_BROADWELL
            .iter()
            .find(|(_, ids)| ids.contains(&id))
            .map_or(IntelGeneration::Gen8OrNewer, |(name, _)| IntelGeneration::PreBroadwell(name))
    }
}

/// An Intel GPU with PCI device id `device` bound to kernel driver `driver`, for tests.
#[cfg(test)]
pub(crate) fn test_intel_gpu(device: &str, driver: &str) -> GpuDevice {
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

    #[rstest]
    #[case::alder_lake("0x46a6", "i915", IntelGeneration::Gen8OrNewer)]
    #[case::broadwell("0x1616", "i915", IntelGeneration::Gen8OrNewer)]
    #[case::haswell("0x0412", "i915", IntelGeneration::PreBroadwell("Haswell (Gen7.5)"))]
    #[case::ivy_bridge("0x0166", "i915", IntelGeneration::PreBroadwell("Ivy Bridge (Gen7)"))]
    #[case::bay_trail("0x0f31", "i915", IntelGeneration::PreBroadwell("Valleyview/Bay Trail (Gen7)"))]
    #[case::sandy_bridge("0x0126", "i915", IntelGeneration::PreBroadwell("Sandy Bridge (Gen6)"))]
    #[case::arc_on_xe("0x56a0", "xe", IntelGeneration::Gen8OrNewer)]
    fn generations(#[case] device: &str, #[case] driver: &str, #[case] want: IntelGeneration) {
        assert_eq!(test_intel_gpu(device, driver).intel_generation(), want);
    }
}
