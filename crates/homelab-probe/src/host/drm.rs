//! Inventory of DRM nodes: `/dev/dri/renderD*` and `/dev/dri/card*`, with owner, group and
//! mode from the device file, the device behind it from sysfs (`/sys/class/drm/<node>/device`:
//! PCI address, vendor and device ids, kernel driver), and on the live host the DRM driver
//! name from the `DRM_IOCTL_VERSION` ioctl (allowed on render nodes without root).
//!
//! [`gpus`] merges that with the PCI display controllers in `/sys/bus/pci/devices` (base class
//! `0x03` of the PCI class code), so a GPU without DRM nodes (NVIDIA's `nvidia.ko` without
//! `nvidia-drm`, a GPU bound to `vfio-pci`) is still seen.

use std::path::{Path, PathBuf};

use super::acl::read_acl;
use super::identity::IdentityDb;
use super::{Host, HostError};
use crate::model::inventory::{DrmNode, DrmNodeKind, GpuDevice, GpuVendor, PciDevice};

/// The directory of DRM device nodes.
pub const DRI_DIR: &str = "/dev/dri";

/// Lists the DRM nodes of `host`, render nodes first, each in numeric order. A host without
/// `/dev/dri` has none (an empty list, not an error).
pub fn inventory(host: &Host, ids: &IdentityDb) -> Result<Vec<DrmNode>, HostError> {
    let names = match host.read_dir(DRI_DIR) {
        Ok(n) => n,
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut nodes = Vec::new();
    for name in names {
        let Some(name) = name.to_str() else { continue };
        let Some(kind) = DrmNodeKind::of_name(name) else { continue };
        let path = format!("{DRI_DIR}/{name}");
        let stat = host.stat(&path)?;
        let acl = read_acl(host, Path::new(&path)).unwrap_or(None);
        let sys = format!("/sys/class/drm/{name}/device");
        let device_path = host.canonical(&sys).ok();
        let pci = device_path.as_deref().and_then(|d| pci_device(host, d));
        let kernel_driver = device_path.as_deref().and_then(|d| kernel_driver(host, d));
        let (drm_driver, drm_driver_note) = drm_driver_name(host, &path);
        nodes.push(DrmNode {
            owner_name: ids.user_by_uid(stat.uid).map(|u| u.name),
            group_name: ids.group_by_gid(stat.gid).map(|g| g.name),
            path,
            kind,
            stat,
            acl,
            kernel_driver,
            pci,
            drm_driver,
            drm_driver_note,
        });
    }
    nodes.sort_by_key(|n| (n.kind != DrmNodeKind::Render, node_number(&n.path)));
    Ok(nodes)
}

fn node_number(path: &str) -> u32 {
    let digits: String = path.chars().rev().take_while(char::is_ascii_digit).collect();
    digits.chars().rev().collect::<String>().parse().unwrap_or(u32::MAX)
}

/// Whether `s` is a PCI address in sysfs form, `0000:00:02.0`.
pub fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && (b'0'..=b'7').contains(&b[11])
        && [0..4, 5..7, 8..10].into_iter().all(|r| b[r].iter().all(u8::is_ascii_hexdigit))
}

/// The PCI devices directory of sysfs.
pub const PCI_DEVICES_DIR: &str = "/sys/bus/pci/devices";

/// Every GPU of `host`: PCI display controllers from sysfs merged with the devices behind
/// `nodes` (from [`inventory`]), sorted by PCI address (non-PCI DRM devices last, by node).
pub fn gpus(host: &Host, nodes: &[DrmNode]) -> Vec<GpuDevice> {
    let mut out: Vec<GpuDevice> = Vec::new();
    for name in host.read_dir(PCI_DEVICES_DIR).unwrap_or_default() {
        let Some(name) = name.to_str() else { continue };
        let dir = format!("{PCI_DEVICES_DIR}/{name}");
        let read = |f: &str| host.read_to_string(format!("{dir}/{f}")).ok().map(|s| s.trim().to_owned());
        let Some(class) = read("class") else { continue };
        // Base class 0x03: display controller (VGA 0x0300, XGA 0x0301, 3D 0x0302, other 0x0380).
        if !class.to_ascii_lowercase().starts_with("0x03") {
            continue;
        }
        let device_path = host.canonical(&dir).ok();
        let pci = PciDevice { address: name.to_ascii_lowercase(), vendor: read("vendor"), device: read("device") };
        out.push(GpuDevice {
            vendor: pci.gpu_vendor(),
            pci: Some(pci),
            pci_class: Some(class),
            kernel_driver: device_path.as_deref().and_then(|d| kernel_driver(host, d)),
            drm_driver: None,
            render_node: None,
            card_node: None,
        });
    }
    for n in nodes {
        let address = n.pci.as_ref().map(|p| p.address.clone());
        let existing = out.iter_mut().position(|g| match (&g.pci, &address) {
            (Some(p), Some(a)) => &p.address == a,
            (None, None) => g.kernel_driver == n.kernel_driver && g.drm_driver == n.drm_driver,
            _ => false,
        });
        let idx = existing.unwrap_or_else(|| {
            out.push(GpuDevice {
                vendor: n.pci.as_ref().map_or(GpuVendor::Other, PciDevice::gpu_vendor),
                pci: n.pci.clone(),
                pci_class: None,
                kernel_driver: n.kernel_driver.clone(),
                drm_driver: None,
                render_node: None,
                card_node: None,
            });
            out.len() - 1
        });
        let g = &mut out[idx];
        // The DRM node's view wins for the driver: for virtio the GPU driver is on the child.
        if n.kernel_driver.is_some() {
            g.kernel_driver.clone_from(&n.kernel_driver);
        }
        if g.drm_driver.is_none() {
            g.drm_driver.clone_from(&n.drm_driver);
        }
        let slot = match n.kind {
            DrmNodeKind::Render => &mut g.render_node,
            DrmNodeKind::Card => &mut g.card_node,
        };
        if slot.is_none() {
            *slot = Some(n.path.clone());
        }
    }
    out.sort_by(|a, b| {
        let key = |g: &GpuDevice| (g.pci.is_none(), g.pci.as_ref().map(|p| p.address.clone()), g.render_node.clone());
        key(a).cmp(&key(b))
    });
    out
}

/// The deepest PCI function on the sysfs device path `device`, with its ids.
fn pci_device(host: &Host, device: &Path) -> Option<PciDevice> {
    let mut dir: PathBuf = device.to_path_buf();
    loop {
        let name = dir.file_name()?.to_str()?.to_owned();
        if is_pci_address(&name) {
            let id = |f: &str| host.read_to_string(dir.join(f)).ok().map(|s| s.trim().to_owned());
            return Some(PciDevice { address: name.to_ascii_lowercase(), vendor: id("vendor"), device: id("device") });
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// The kernel driver bound to `device`. A virtio GPU's DRM device is the PCI function bound to
/// `virtio-pci`; the GPU driver (`virtio_gpu`) is bound to its `virtio<N>` child.
fn kernel_driver(host: &Host, device: &Path) -> Option<String> {
    let driver_of = |d: &Path| -> Option<String> {
        let target = host.read_link(d.join("driver")).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    };
    let driver = driver_of(device)?;
    if driver == "virtio-pci" {
        if let Ok(children) = host.read_dir(device) {
            for c in children {
                if c.to_string_lossy().starts_with("virtio") {
                    if let Some(d) = driver_of(&device.join(&c)) {
                        return Some(d);
                    }
                }
            }
        }
    }
    Some(driver)
}

/// The DRM driver name through the version ioctl, live host only.
fn drm_driver_name(host: &Host, path: &str) -> (Option<String>, Option<String>) {
    if !host.is_live() {
        return (None, Some("not read: a sysroot has no devices to ask".into()));
    }
    ioctl_driver_name(Path::new(path))
}

#[cfg(feature = "drm")]
fn ioctl_driver_name(path: &Path) -> (Option<String>, Option<String>) {
    use std::os::fd::{AsFd, BorrowedFd};

    struct Card(std::fs::File);
    impl AsFd for Card {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.0.as_fd()
        }
    }
    impl drm::Device for Card {}

    use drm::Device as _;
    // Read-only is enough for DRM_IOCTL_VERSION and works for anyone who may open the node.
    match std::fs::OpenOptions::new().read(true).open(path) {
        Err(e) => (None, Some(format!("cannot open {}: {e}", path.display()))),
        Ok(f) => match Card(f).get_driver() {
            Ok(d) => (Some(d.name().to_string_lossy().into_owned()), None),
            Err(e) => (None, Some(format!("DRM_IOCTL_VERSION on {} failed: {e}", path.display()))),
        },
    }
}

#[cfg(not(feature = "drm"))]
fn ioctl_driver_name(_path: &Path) -> (Option<String>, Option<String>) {
    (None, Some("not read: homelab-probe was built without the `drm` feature".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("renderD128", Some(DrmNodeKind::Render))]
    #[case("card0", Some(DrmNodeKind::Card))]
    #[case("card0-Virtual-1", None)]
    #[case("by-path", None)]
    #[case("renderD", None)]
    fn kinds(#[case] name: &str, #[case] want: Option<DrmNodeKind>) {
        assert_eq!(DrmNodeKind::of_name(name), want);
    }

    #[rstest]
    #[case("0000:00:02.0", true)]
    #[case("0000:c1:00.0", true)]
    #[case("0000:00:02.8", false)]
    #[case("pci0000:00", false)]
    #[case("00000000:01:00.0", false)]
    fn pci(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_pci_address(s), ok);
    }
}
