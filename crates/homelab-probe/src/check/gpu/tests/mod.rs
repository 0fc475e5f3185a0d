//! The GPU decisions on every error branch, with fake NVML and libva layers. The fakes only
//! stand in for the libraries' answers; the real libraries are exercised in
//! tests/gpu_live.rs and (by hand, under QEMU) in docs/gpu.md.
//!
//! One file per library faked: `nvml.rs` (NVENC), `libva.rs` (VA-API), `containers.rs` (CDI
//! specs and Docker's configuration); this file holds the GPUs and helpers they share.

mod containers;
mod libva;
mod nvml;

use crate::model::expectations::GpuExpectation;
use crate::model::finding::Finding;
use crate::model::inventory::{GpuDevice, GpuVendor, PciDevice, VideoCodec};

fn gpu(vendor: GpuVendor, address: &str, ids: (&str, &str), driver: Option<&str>, render: Option<&str>) -> GpuDevice {
    GpuDevice {
        pci: Some(PciDevice { address: address.into(), vendor: Some(ids.0.into()), device: Some(ids.1.into()) }),
        pci_class: Some("0x030000".into()),
        vendor,
        kernel_driver: driver.map(str::to_owned),
        drm_driver: None,
        render_node: render.map(str::to_owned),
        card_node: None,
    }
}

fn rtx3060() -> GpuDevice {
    gpu(GpuVendor::Nvidia, "0000:01:00.0", ("0x10de", "0x2504"), Some("nvidia"), Some("/dev/dri/renderD129"))
}

fn alder_lake() -> GpuDevice {
    gpu(GpuVendor::Intel, "0000:00:02.0", ("0x8086", "0x46a6"), Some("i915"), Some("/dev/dri/renderD128"))
}

fn one<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    let all: Vec<&Finding> = findings.iter().filter(|f| f.check == check).collect();
    assert_eq!(all.len(), 1, "one {check} finding expected in {findings:#?}");
    all[0]
}

fn require_nvenc(codecs: &[VideoCodec]) -> GpuExpectation {
    GpuExpectation { nvenc: codecs.to_vec(), ..GpuExpectation::default() }
}
