//! The GPU probe: which GPUs the host has, whether NVIDIA's encoder (NVENC) is there and free
//! (through NVML), which VA-API encode and decode entrypoints each render node offers (through
//! libva), and whether containers can be given an NVIDIA GPU (CDI specs, Docker's daemon
//! configuration).
//!
//! Hardware transcoding is why Plex and Jellyfin users care: a render node that exists is not
//! enough; the driver must expose encode entrypoints and containers must be able to reach them.
//! With no `[gpu]` expectations the probe reports what exists and skips, with the reason, what
//! does not apply: a host is never failed for having no GPU.
//!
//! Gathering and deciding are separate: NVML and libva sit behind small traits
//! ([`NvmlLibrary`], [`VaapiLoader`]) so [`check_with`] can be driven by fakes, and each
//! sub-module's `decide` works on plain facts.

pub mod container;
pub mod nvenc;
pub mod remedy;
pub mod vaapi;

#[cfg(test)]
mod tests;

use crate::host::drm::{self, PCI_DEVICES_DIR};
use crate::host::identity::IdentityDb;
use crate::host::nvml::{self, NvmlLibrary, SystemNvml};
use crate::host::vaapi::{SystemLibva, VaEnv, VaapiLoader};
use crate::host::{Host, drm::DRI_DIR};
use crate::model::expectations::Expectations;
use crate::model::finding::{Finding, Probe, Remedy};
use crate::model::inventory::{GpuDevice, GpuVendor};

const P: Probe = Probe::Gpu;

/// The live-host libraries the probe asks, replaceable by fakes in tests.
pub struct GpuLibraries<'a> {
    /// NVML.
    pub nvml: &'a dyn NvmlLibrary,
    /// libva.
    pub vaapi: &'a dyn VaapiLoader,
    /// `LIBVA_DRIVER_NAME` and `LIBVA_DRIVERS_PATH` as libva will see them.
    pub va_env: VaEnv,
}

impl GpuLibraries<'static> {
    /// The system's libraries and this process's environment.
    pub fn system() -> Self {
        GpuLibraries { nvml: &SystemNvml, vaapi: &SystemLibva, va_env: VaEnv::from_process() }
    }
}

/// Runs the GPU probe with the system's NVML and libva.
pub fn check(host: &Host, ids: &IdentityDb, exp: &Expectations) -> Vec<Finding> {
    check_with(host, ids, exp, &GpuLibraries::system())
}

/// Runs the GPU probe with the given libraries (NVML and libva are asked on the live host only).
pub fn check_with(host: &Host, ids: &IdentityDb, exp: &Expectations, libs: &GpuLibraries<'_>) -> Vec<Finding> {
    // A /dev/dri that cannot be listed is the render-node probe's finding; here it only means
    // that GPUs are known from PCI alone.
    let nodes = drm::inventory(host, ids).unwrap_or_default();
    let gpus = drm::gpus(host, &nodes);
    let mut out = inventory_findings(&gpus, host.exists(PCI_DEVICES_DIR));
    let nvml = host.is_live().then(|| nvml::gather(libs.nvml));
    out.extend(nvenc::decide(host.is_live(), &gpus, nvml.as_ref(), &exp.gpu));
    let va = vaapi::gather(host, &gpus, libs.vaapi, &libs.va_env);
    out.extend(vaapi::decide(&va, &gpus, &exp.gpu));
    let containers = container::gather(host);
    let exists = |p: &str| host.exists(p);
    let exists: Option<&dyn Fn(&str) -> bool> = if host.is_live() { Some(&exists) } else { None };
    out.extend(container::decide(&gpus, &containers, &exp.gpu, exists));
    out
}

/// The NVIDIA GPUs of the host that the host itself drives (not handed to a VM).
pub(crate) fn nvidia_gpus(gpus: &[GpuDevice]) -> Vec<&GpuDevice> {
    gpus.iter().filter(|g| g.vendor == GpuVendor::Nvidia && g.kernel_driver.as_deref() != Some("vfio-pci")).collect()
}

/// `0000:01:00.0 NVIDIA [10de:2504] (driver nvidia)`.
pub(crate) fn gpu_text(g: &GpuDevice) -> String {
    let driver = g.kernel_driver.as_deref().map_or_else(|| "no driver bound".to_owned(), |d| format!("driver {d}"));
    format!("{} {} ({driver})", g.subject(), g.describe())
}

/// One finding per GPU (`gpu_inventory`), or a skip when there is none.
pub fn inventory_findings(gpus: &[GpuDevice], pci_listed: bool) -> Vec<Finding> {
    if gpus.is_empty() {
        let pci = if pci_listed {
            "no PCI display controller in /sys/bus/pci/devices"
        } else {
            "/sys/bus/pci/devices cannot be listed here"
        };
        return vec![Finding::skip(
            P,
            "gpu_inventory",
            "GPUs",
            format!("no GPU: {pci} and no DRM device under {DRI_DIR}"),
        )];
    }
    gpus.iter()
        .map(|g| {
            let mut parts = vec![g.describe()];
            match g.kernel_driver.as_deref() {
                Some(d) => parts.push(format!("driver {d}")),
                None => parts.push("no kernel driver bound".into()),
            }
            if let Some(d) = g.drm_driver.as_ref().filter(|d| Some(*d) != g.kernel_driver.as_ref()) {
                parts.push(format!("drm {d}"));
            }
            parts.extend(g.render_node.clone());
            parts.extend(g.card_node.clone());
            let msg = parts.join(", ");
            let f = match g.kernel_driver.as_deref() {
                None => Finding::warn(
                    P,
                    "gpu_inventory",
                    g.subject(),
                    format!("{msg}: nothing on this host can use it until a driver binds to it"),
                )
                .remedy(no_driver_remedy(g)),
                Some("vfio-pci") => Finding::pass(
                    P,
                    "gpu_inventory",
                    g.subject(),
                    format!("{msg}: passed through to a virtual machine, not usable on this host"),
                ),
                Some("nouveau") => Finding::pass(
                    P,
                    "gpu_inventory",
                    g.subject(),
                    format!("{msg} (nouveau has no NVENC: hardware encoding needs NVIDIA's driver)"),
                ),
                Some(_) => Finding::pass(P, "gpu_inventory", g.subject(), msg),
            };
            f.evidence("gpu", g)
        })
        .collect()
}

fn no_driver_remedy(g: &GpuDevice) -> Remedy {
    match g.vendor {
        GpuVendor::Nvidia => remedy::nvidia_driver(),
        _ => Remedy::manual(
            "i915/xe and amdgpu load by themselves on NixOS: look in `journalctl -k` for why they did not (nomodeset in boot.kernelParams, missing firmware: hardware.enableRedistributableFirmware = true;)",
        ),
    }
}
