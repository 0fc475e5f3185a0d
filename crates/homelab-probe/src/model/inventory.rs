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
